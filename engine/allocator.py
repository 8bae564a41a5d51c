"""glibc's malloc told to keep the memory a training step frees, for the next step to reuse.

A CPU step allocates and frees the same large buffers every iteration (activations; a batch's
upsampled logits and their gradients, ~10 MB each at the quick preset). By default glibc serves such
blocks by mmap, or gives the freed top of its heap back to the kernel, so every step faults its
buffers in again as fresh zeroed pages: about a quarter of a PSPNet step and an eighth of a GCN step
at the quick preset (benchmarks/train_step.py, measured with and without). A trim threshold of 1 GiB, a
64 MiB top pad and the mmap threshold at its ceiling (32 MiB) keep the blocks in the heap. Only where
the bytes live changes: every number is the same (tests/test_reproducible.py; rerun ablations compared
row by row with probes.same_rows). Set at engine import, so the spawned workers, torchrun ranks and
submitit jobs that import the engine have it too; elsewhere than glibc it is a no-op.
"""
import ctypes
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's <malloc.h>
SETTINGS = ((M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20), (M_MMAP_THRESHOLD, 32 << 20))


def keep_freed_memory():
    """Apply SETTINGS through mallopt; True if glibc took every one (False off glibc)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in SETTINGS)
