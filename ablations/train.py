"""The one trainer: SGD + momentum, poly LR, cross-entropy with ignore index, exact resume.

Resume is exact because nothing depends on hidden state: the LR is a pure function of the
iteration, and the batch at iteration i (which images, which augmentation) is a pure function of
(seed, i). The checkpoint carries the RNG states, so model code that draws random numbers
(dropout) resumes where it stopped; the data loader has a generator of its own, so it never draws
from the global RNG (it would, on creating its iterator, after the states were restored).

Every model computes its training loss in forward: model(images, labels, progress) -> (loss, parts).
"""
import json
import os
import random
import time

import numpy as np
import torch
from tqdm import tqdm

from ablations.distributed import all_sum, barrier, gather, global_batchnorm, is_main, world
from data import IGNORE_INDEX, atomic_write

AMP_DTYPES = {"bf16": torch.bfloat16}  # train.amp: the autocast dtype of the forward pass
LOG_EVERY = 10  # iterations between lines of run_dir/log.jsonl (the loss and its parts at that iteration)


class NonFiniteLoss(RuntimeError):
    pass


def poly_lr(base_lr, iteration, max_iterations, power=0.9):
    return base_lr * (1 - iteration / max_iterations) ** power


def learning_rate(cfg, iteration):
    """Poly decay by default; with cfg['lr_step'] a step schedule instead (DeepLab v1: ×lr_gamma,
    default 0.1, every lr_step iterations). Either way a pure function of the iteration."""
    if cfg.get("lr_step"):
        return cfg["lr"] * cfg.get("lr_gamma", 0.1) ** (iteration // cfg["lr_step"])
    return poly_lr(cfg["lr"], iteration, cfg["iterations"], cfg["poly_power"])


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


class ResumableBatches(torch.utils.data.Sampler):
    """Batches of (index, aug_seed) for iterations [start, stop): every epoch is a fresh permutation
    drawn from (seed, epoch), so batch i is the same whether or not the run was interrupted.
    part=(rank, world size): this rank's contiguous slice of each (global) batch."""

    def __init__(self, n, batch_size, seed, start, stop, part=(0, 1)):
        self.n, self.batch_size, self.seed, self.start, self.stop = n, batch_size, seed, start, stop
        rank, size = part
        self.slice = range(rank * batch_size // size, (rank + 1) * batch_size // size)
        self._perm_epoch, self._perm = None, None

    def _index(self, pos):
        epoch = pos // self.n
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return int(self._perm[pos % self.n])

    def __iter__(self):
        for it in range(self.start, self.stop):
            pos = it * self.batch_size
            yield [(self._index(pos + p), self.seed * 1_000_003 + pos + p) for p in self.slice]

    def __len__(self):
        return self.stop - self.start


def rng_states():
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states):
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def atomic_save(obj, path):
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def param_groups(model, lr, head_lr_mult):
    """Backbone at lr, everything else (the new layers) at lr * head_lr_mult."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    return [{"params": backbone, "lr_mult": 1.0}, {"params": rest, "lr_mult": head_lr_mult}]


def autocast(cfg, device):
    """The forward pass's autocast context: bfloat16 with train.amp "bf16", else off."""
    return torch.autocast(torch.device(device).type, AMP_DTYPES.get(cfg.get("amp"), torch.bfloat16),
                          enabled=bool(cfg.get("amp")))


def compiled(model):
    """torch.compile(model) for training steps. The wrapper shares model's parameters (its own state
    dict would prefix every key with `_orig_mod.`, so checkpoints hold model's). The reset: every
    model's forward is one function (segmodels/base.py) and a worker trains run after run, so the
    graphs of earlier runs would count towards dynamo's recompile limit (8), past which the rest
    train eager without a word. (Floats that change every iteration, `progress` and the loss parts,
    cost one recompile: dynamo then treats them as dynamic.)"""
    torch._dynamo.reset()
    return torch.compile(model)


def compile_error(err):
    """torch.compile's failure to build a step as one line: no C++ compiler on this machine, or a
    model it cannot compile (the layer cascade's region path, with its data-dependent sizes)."""
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    return RuntimeError(f"train.compile: torch.compile cannot compile the training step ({text}); "
                        "train without --compile")


def train(model, dataset, cfg, seed, run_dir, device="cpu", progress=True, stop_at=None):
    """Train `model` for cfg['iterations'] iterations, resuming from run_dir/ckpt.pt if present.
    Writes run_dir/model.pt at the end and returns {'train_img_per_s', 'train_s'}.
    Raises NonFiniteLoss if the loss is NaN/inf (the checkpoint stays as it was). With stop_at, the
    call ends (returning None) right after the checkpoint at that iteration, as if killed there.

    Under torchrun (ablations/distributed.py) every rank calls this together: each trains on its
    slice of the global batch, with BatchNorm over the global batch, and its loss weighted so that
    the gradient DDP averages is the gradient of the loss averaged over the global batch's valid
    pixels, as one process computes it (exact for a loss that is a mean over valid pixels, which is
    every model's cross-entropy). Rank 0 writes the log, checkpoints (every rank's RNG states) and
    model.pt."""
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    iterations, batch_size = cfg["iterations"], cfg["batch_size"]
    rank, world_size = world()
    if world_size > 1:
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} does not split evenly over {world_size} processes")
        if cfg.get("compile"):
            raise ValueError("train.compile is not supported with several processes (torchrun): drop --compile")
        model = global_batchnorm(model, device)  # before the optimizer takes the parameters
    model.to(device)
    if cfg.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(param_groups(model, cfg["lr"], cfg["head_lr_mult"]), lr=cfg["lr"],
                          momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    start, elapsed = 0, 0.0
    seed_everything(seed)
    if os.path.exists(ckpt_path):
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt.get("world_size", 1) != world_size:  # each rank's RNG state and batch slice belong to one world size
            raise ValueError(f"{ckpt_path} was written by {ckpt.get('world_size', 1)} process(es), this run has "
                             f"{world_size}: resume it with torchrun --nproc_per_node {ckpt.get('world_size', 1)} "
                             "(or delete the checkpoint to start the run afresh)")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start, elapsed = ckpt["iteration"], ckpt["train_s"]
        set_rng_states(ckpt["rng_ranks"][rank] if "rng_ranks" in ckpt else ckpt["rng"])  # "rng": older checkpoints
    batches = ResumableBatches(len(dataset), batch_size, seed, start, iterations, (rank, world_size))
    # the loader's own generator: creating its iterator draws a base seed, which from the global RNG
    # would shift every later dropout mask of a resumed run
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=cfg.get("workers", 0),
                                         pin_memory=device != "cpu", generator=torch.Generator().manual_seed(seed))
    log = open(os.path.join(run_dir, "log.jsonl") if is_main() else os.devnull, "a")
    model.train()
    tick = time.perf_counter()
    bar = tqdm(total=iterations, initial=start, desc=os.path.basename(run_dir), disable=not (progress and is_main()),
               leave=False, dynamic_ncols=True)
    step = compiled(model) if cfg.get("compile") else model
    if world_size > 1:
        step = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.startswith("cuda") else None,
            find_unused_parameters=True)  # e.g. an auxiliary head at weight 0
    for it, (images, labels) in enumerate(loader, start=start):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if cfg.get("channels_last"):
            images = images.contiguous(memory_format=torch.channels_last)
        lr = learning_rate(cfg, it)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_mult"]
        try:  # forward and backward: with compile, each is compiled on its first call
            with autocast(cfg, device):
                loss, parts = step(images, labels, progress=it / iterations)
            loss = loss.float()
            if world_size > 1:  # weight: this rank's share of the global batch's valid pixels
                valid = (labels != IGNORE_INDEX).sum().to(loss.dtype)
                total = all_sum(torch.stack([loss.detach() * valid, valid]))
                loss = loss * valid * world_size / total[1]  # DDP divides the summed gradients by world_size
                loss_value = total[0] / total[1]  # the global batch's loss, identical on every rank
            else:
                loss_value = loss
            if not torch.isfinite(loss_value):
                raise NonFiniteLoss(f"non-finite loss ({loss_value.item()}) at iteration {it}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
        except (NonFiniteLoss, torch._dynamo.exc.BackendCompilerFailed) as err:
            log.close()
            if isinstance(err, NonFiniteLoss):
                raise
            raise compile_error(err) from None
        opt.step()
        bar.update(1)
        done = it + 1
        if done % LOG_EVERY == 0 or done == iterations:
            bar.set_postfix(loss=f"{loss_value.item():.3f}")
            log.write(json.dumps({"iteration": done, "loss": loss_value.item(), "lr": lr,
                                  **{k: float(v) for k, v in parts.items()}}) + "\n")
            log.flush()
        if done % cfg["checkpoint_every"] == 0 and done < iterations:
            if device != "cpu":
                torch.cuda.synchronize()
            now = time.perf_counter()
            states = gather(rng_states())
            if is_main():
                atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": done,
                             "train_s": elapsed + now - tick, "rng_ranks": states,
                             "world_size": world_size}, ckpt_path)
            barrier()
            elapsed, tick = elapsed + now - tick, time.perf_counter()
            if done == stop_at:
                bar.close()
                log.close()
                return None
    if device != "cpu":
        torch.cuda.synchronize()
    elapsed += time.perf_counter() - tick
    bar.close()
    log.close()
    if is_main():
        atomic_save(model.state_dict(), os.path.join(run_dir, "model.pt"))
        if os.path.exists(ckpt_path):
            os.remove(ckpt_path)
    barrier()
    # back to the layout a model loaded from model.pt has, so evaluating it now gives the very
    # numbers a later evaluation of the saved model gives
    model.to(memory_format=torch.contiguous_format)
    return {"train_img_per_s": iterations * batch_size / elapsed if elapsed > 0 else float("nan"),
            "train_s": elapsed}
