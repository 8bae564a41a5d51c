"""Page faults of repeated step-sized allocations, with engine/allocator.py's setting and with glibc's defaults.

The setting's purpose is to spare every training step the fresh zeroed pages glibc hands out when it
gives a freed block back to the kernel. How many it spares depends on the kernel and the machine (one
full test run saw 4.8× fewer, others 10× and more), so it is measured here, not asserted in a unit test;
tests/test_reproducible.py checks that the setting is taken and moves no number.

    python -m benchmarks.allocator [--steps 10]
"""
import argparse
import subprocess
import sys

# glibc's own thresholds (small trim and mmap thresholds, no top pad): undoes engine/allocator.py
MALLOC_DEFAULTS = """if "--malloc-defaults" in sys.argv:
    import ctypes
    for option, value in ((-1, 128 * 1024), (-2, 0), (-3, 128 * 1024)):
        ctypes.CDLL(None).mallopt(option, value)"""
# a step's allocations, repeated: buffers the size of the quick preset's upsampled logits and activations
FAULTS = r"""
import engine, resource, sys
MALLOC_DEFAULTS
import torch
def step():
    held = [torch.ones(16, 9, 128, 128), torch.ones(16, 24, 64, 64), torch.ones(16, 32, 32, 32), torch.ones(16, 9, 128, 128)]
    return sum(t.sum() for t in held)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(int(sys.argv[1])):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""".replace("MALLOC_DEFAULTS", MALLOC_DEFAULTS)


def page_faults(steps, malloc_defaults, cwd=None):
    """Minor page faults of `steps` repetitions of the step's allocations, in a fresh interpreter."""
    flags = ["--malloc-defaults"] if malloc_defaults else []
    out = subprocess.run([sys.executable, "-c", FAULTS, str(steps), *flags], cwd=cwd, capture_output=True,
                         text=True, check=True)
    return int(out.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    kept, defaults = page_faults(args.steps, False), page_faults(args.steps, True)
    print(f"{args.steps} steps of ~33 MB: {kept} page faults with engine/allocator.py's setting, "
          f"{defaults} with glibc's defaults ({defaults / max(kept, 1):.1f}x)")


if __name__ == "__main__":
    main()
