"""The same numbers on every CPU of one capability: MKL pinned to one code path.

PyTorch computes a 1×1 convolution of a small batch (fewer than 16 images on one thread: the GCN
base head, DeepLab's fc7 and classifier, PSPNet's projections at batch 8) and every matrix product
with MKL's SGEMM (the models now send those convolutions to oneDNN: segmodels/base.py
OneDNNConv1x1; the pin stays for any other MKL call), whose kernels otherwise follow the CPU: an Intel and an AMD Xeon-class CPU, both
AVX512, took different MKL paths, and the same runs differed by up to 3.6 mIoU. MKL's conditional
numerical reproducibility (MKL_CBWR) pins every MKL call to its COMPATIBLE branch (SSE2 without the
approximate reciprocals), the same code on every x86-64 CPU. MKL reads the variable at its first
call, so it is set when the engine is imported, before any tensor is computed; worker processes
(spawned, torchrun ranks, submitit jobs) inherit the environment, and import the engine anyway.
oneDNN, which computes the other convolutions, follows the CPU capability (recorded in each row),
hence the guarantee: the same numbers on any CPU of one capability, with the same torch.
"""
import os

MKL_BRANCH = "COMPATIBLE"


def pin_mkl():
    """Set MKL_CBWR for this process and its children (a value set before is replaced: the suite's
    numbers are defined with this branch). Returns the setting, as each row records it."""
    os.environ["MKL_CBWR"] = MKL_BRANCH
    return MKL_BRANCH


def mkl_setting():
    return os.environ.get("MKL_CBWR", "unset")
