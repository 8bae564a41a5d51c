"""One training run over several processes: `torchrun --nproc_per_node N run_all.py ...`.

Every rank plans the same runs and trains each one together (DistributedDataParallel); the global
batch stays the preset's whatever N is: rank r takes the r-th contiguous slice of the batch that
ResumableBatches defines, so a run resumes exactly without any sampler state. BatchNorm statistics
are taken over the global batch: SyncBatchNorm on CUDA; on CPU (PyTorch's SyncBatchNorm refuses
it) CrossProcessBatchNorm, so that 2 processes × B/2 compute what 1 process × B does. Rank 0 alone
writes (checkpoints, logs, rows, the report) and evaluates; the others wait at barriers.

Without torchrun (WORLD_SIZE unset or 1) every function here is a no-op: rank 0 of a world of 1.
"""
import os

import torch
import torch.distributed as dist
import torch.nn as nn


def world():
    """(rank, world size) of this process; (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main():
    return world()[0] == 0


def barrier():
    if world()[1] > 1:
        dist.barrier()


def init_from_env(device):
    """Join torchrun's process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA, where each rank
    takes its LOCAL_RANK's GPU). Returns the device this process trains on."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return device


def finish():
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_sum(tensor):
    """The sum over ranks (a new tensor; the input is left as it was); differentiable."""
    if world()[1] == 1:
        return tensor
    import torch.distributed.nn.functional as dist_nn
    return dist_nn.all_reduce(tensor.clone())


def gather(obj):
    """[obj of rank 0, obj of rank 1, ...] (any picklable object); [obj] in one process."""
    if world()[1] == 1:
        return [obj]
    out = [None] * world()[1]
    dist.all_gather_object(out, obj)
    return out


class CrossProcessBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch (every rank's pixels): the
    per-channel sums and count, then the squared deviations from the global mean, are summed over
    ranks by a differentiable all-reduce, so the gradients also flow as in one process. Running statistics update as BatchNorm2d's (the
    unbiased variance of the global batch). Evaluation: plain BatchNorm2d."""

    def forward(self, x):
        if not self.training or world()[1] == 1:
            return super().forward(x)
        # two passes, summed in float64: the mean, then the mean squared deviation from it (one pass,
        # E[x²] − E[x]², loses digits that one process's BatchNorm keeps)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64, device=x.device)
        stats = all_sum(torch.cat([x.double().sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:-1] / n
        var = all_sum((x.double() - mean[None, :, None, None]).pow(2).sum((0, 2, 3))) / n  # biased, as BatchNorm2d's
        mean, var, n = mean.to(x.dtype), var.to(x.dtype), n.item()
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None] if self.affine else y


def global_batchnorm(model, device):
    """model with every BatchNorm2d taking its statistics over all ranks (in place, same state dict
    keys): SyncBatchNorm on CUDA, CrossProcessBatchNorm on CPU."""
    if device.startswith("cuda"):
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module):
        for name, child in module.named_children():
            if type(child) is nn.BatchNorm2d:
                if child.momentum is None:
                    raise ValueError("cross-process BatchNorm: a cumulative moving average (momentum None) is not supported")
                new = CrossProcessBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                            child.track_running_stats).to(child.running_mean.device)
                new.load_state_dict(child.state_dict())
                setattr(module, name, new)
            else:
                convert(child)
    convert(model)
    return model
