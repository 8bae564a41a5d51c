"""One training step, the same wherever a step is taken: the trainer (engine/trainer.py), the timing
phase (engine/timing.py) and the step benchmark (benchmarks/train_step.py).

make_optimizer builds the SGD of a train config with the model's own parameter groups (its backbone
at lr, its new layers at lr × head_lr_mult: SegModel.parameter_groups); train_step runs the loss
through forward (so DDP syncs the gradients), backward and the optimiser step. Loss parts stay
tensors: whoever logs them reads them every few steps, so a GPU step never waits for them.
"""
import torch

from data import IGNORE_INDEX
from engine.distributed import all_sum

AMP_DTYPES = {"bf16": torch.bfloat16}  # train.amp: the autocast dtype of the forward pass


class NonFiniteLoss(RuntimeError):
    pass


def make_optimizer(model, cfg):
    """SGD with momentum and weight decay: the model's backbone at cfg['lr'], its new layers at
    cfg['lr'] × cfg['head_lr_mult'] (each group's lr_mult; set_lr applies it). foreach: one call per
    update for all parameters instead of a Python loop over them (CPU's default is the loop); the
    same elementwise kernels, so the same floats (tests/test_engine.py)."""
    backbone, new = model.parameter_groups()
    groups = [{"params": [p for p in backbone if p.requires_grad], "lr_mult": 1.0},
              {"params": [p for p in new if p.requires_grad], "lr_mult": cfg["head_lr_mult"]}]
    return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
                           foreach=True)


def set_lr(opt, lr):
    for group in opt.param_groups:
        group["lr"] = lr * group["lr_mult"]


def autocast(cfg, device):
    """The forward pass's autocast context: bfloat16 with train.amp "bf16", else off."""
    return torch.autocast(torch.device(device).type, AMP_DTYPES.get(cfg.get("amp"), torch.bfloat16),
                          enabled=bool(cfg.get("amp")))


def compiled(model):
    """torch.compile(model) for training steps. The wrapper shares model's parameters (its own state
    dict would prefix every key with `_orig_mod.`, so checkpoints hold model's). The reset: every
    model's forward is one function (segmodels/base.py) and a worker trains run after run, so the
    graphs of earlier runs would count towards dynamo's recompile limit (8), past which the rest
    train eager without a word. (Floats that change every iteration, `progress`, cost one recompile:
    dynamo then treats them as dynamic.)"""
    torch._dynamo.reset()
    return torch.compile(model)


def compile_error(err):
    """torch.compile's failure to build a step as one line: no C++ compiler on this machine, or a
    model it cannot compile (the layer cascade's region path, with its data-dependent sizes)."""
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    return RuntimeError(f"train.compile: torch.compile cannot compile the training step ({text}); "
                        "train without --compile")


def train_step(forward, opt, images, labels, cfg, device, progress=0.0, world_size=1, check_finite=True):
    """One SGD step on (images, labels): the loss through forward(images, labels, progress) under the
    config's autocast, backward, opt.step(). Returns (the loss as a tensor, the model's loss parts).

    Several processes (torchrun): each rank's loss is weighted by its share of the global batch's
    valid pixels, so the gradient DDP averages is that of the loss averaged over the global batch,
    as one process computes it; the returned loss is the global batch's, the same on every rank.
    Raises NonFiniteLoss before the step if the loss is NaN or infinite (the weights stay as they were);
    check_finite=False (a benchmark times steps whatever their loss) skips that check and its sync."""
    try:  # with compile, forward and backward are each compiled on their first call
        with autocast(cfg, device):
            loss, parts = forward(images, labels, progress=progress)
        loss = loss.float()
        if world_size > 1:
            valid = (labels != IGNORE_INDEX).sum().to(loss.dtype)
            total = all_sum(torch.stack([loss.detach() * valid, valid]))
            loss = loss * valid * world_size / total[1]  # DDP divides the summed gradients by world_size
            loss_value = total[0] / total[1]
        else:
            loss_value = loss
        if check_finite and not torch.isfinite(loss_value):
            raise NonFiniteLoss(f"non-finite loss ({loss_value.item()})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
    except torch._dynamo.exc.BackendCompilerFailed as err:
        raise compile_error(err) from None
    opt.step()
    return loss_value, parts
