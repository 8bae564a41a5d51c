"""The one trainer: SGD + momentum, poly LR, the model's loss, exact resume.

Resume is exact because nothing depends on hidden state: the LR is a pure function of the
iteration, and the batch at iteration i (which images, which augmentation) is a pure function of
(seed, i). The checkpoint carries the RNG states, so model code that draws random numbers
(dropout) resumes where it stopped; the data loader has a generator of its own, so it never draws
from the global RNG (it would, on creating its iterator, after the states were restored).

Every model computes its training loss in forward: model(images, labels, progress) -> (loss, parts);
one step is engine/step.py's train_step.
"""
import json
import os
import random
import time

import numpy as np
import torch
from tqdm import tqdm

from engine.distributed import barrier, gather, global_batchnorm, is_main, world
from engine.step import NonFiniteLoss, compiled, make_optimizer, set_lr, train_step
from files import DamagedFile, atomic_write

LOG_EVERY = 10  # iterations between lines of run_dir/log.jsonl (the loss and its parts at that iteration)


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


def restore(ckpt_path, model, opt, world_size, device):
    """Resume from a checkpoint: model, optimiser and this rank's RNG states. Returns (iteration,
    training seconds so far). A checkpoint that cannot be read as this run's is DamagedFile (the
    model may then be half restored: the caller starts the run afresh)."""
    try:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if not isinstance(ckpt, dict):
            raise TypeError(f"a {type(ckpt).__name__}, not a checkpoint")
    except Exception as err:  # random bytes, a cut-off zip, another file: whatever torch.load raises
        raise DamagedFile(ckpt_path, err) from None
    if ckpt.get("world_size", 1) != world_size:  # each rank's RNG state and batch slice belong to one world size
        raise ValueError(f"{ckpt_path} was written by {ckpt.get('world_size', 1)} process(es), this run has "
                         f"{world_size}: resume it with torchrun --nproc_per_node {ckpt.get('world_size', 1)} "
                         "(or delete the checkpoint to start the run afresh)")
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        set_rng_states(ckpt["rng_ranks"][world()[0]] if "rng_ranks" in ckpt else ckpt["rng"])  # "rng": older checkpoints
        return int(ckpt["iteration"]), float(ckpt["train_s"])
    except Exception as err:  # a key missing, another model's weights
        raise DamagedFile(ckpt_path, f"{type(err).__name__}: {err}") from None


def save_checkpoint(ckpt_path, model, opt, iteration, train_s, device):
    """The checkpoint at `iteration` (rank 0 writes it, with every rank's RNG states)."""
    states = gather(rng_states())
    if is_main():
        atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": iteration,
                     "train_s": train_s, "rng_ranks": states, "world_size": world()[1]}, ckpt_path)
    barrier()


def prepare(model, cfg, device):
    """The model on its device and memory format (several processes: BatchNorm over the global batch)
    and its optimiser."""
    world_size = world()[1]
    if world_size > 1:
        if cfg["batch_size"] % world_size:
            raise ValueError(f"batch size {cfg['batch_size']} does not split evenly over {world_size} processes")
        if cfg.get("compile"):
            raise ValueError("train.compile is not supported with several processes (torchrun): drop --compile")
        model = global_batchnorm(model, device)  # before the optimizer takes the parameters
    model.to(device)
    if cfg.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    return model, make_optimizer(model, cfg)


def forward_of(model, cfg, device):
    """What a step calls: the model, compiled (train.compile) or wrapped for DDP (several processes)."""
    if world()[1] > 1:
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.startswith("cuda") else None,
            find_unused_parameters=True)  # e.g. an auxiliary head at weight 0
    return compiled(model) if cfg.get("compile") else model


def train(model, dataset, cfg, seed, run_dir, device="cpu", progress=True, stop_at=None):
    """Train `model` for cfg['iterations'] iterations, resuming from run_dir/ckpt.pt if present.
    Writes run_dir/model.pt at the end and returns {'train_img_per_s', 'train_s'}.
    Raises NonFiniteLoss if the loss is NaN/inf (the checkpoint stays as it was). With stop_at, the
    call ends (returning None) right after the checkpoint at that iteration, as if killed there.

    Under torchrun (engine/distributed.py) every rank calls this together: each trains on its slice
    of the global batch, with BatchNorm over the global batch (train_step weights the loss so that
    DDP's averaged gradient is the global batch's). Rank 0 writes the log, checkpoints (every rank's
    RNG states) and model.pt."""
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "ckpt.pt")
    iterations = cfg["iterations"]
    rank, world_size = world()
    model, opt = prepare(model, cfg, device)
    start, elapsed = 0, 0.0
    seed_everything(seed)
    if os.path.exists(ckpt_path):
        start, elapsed = restore(ckpt_path, model, opt, world_size, device)
    batches = ResumableBatches(len(dataset), cfg["batch_size"], seed, start, iterations, (rank, world_size))
    # the loader's own generator: creating its iterator draws a base seed, which from the global RNG
    # would shift every later dropout mask of a resumed run
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=cfg.get("workers", 0),
                                         pin_memory=device != "cpu", generator=torch.Generator().manual_seed(seed))
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    forward = forward_of(model, cfg, device)
    model.train()
    tick = time.perf_counter()
    with open(os.path.join(run_dir, "log.jsonl") if is_main() else os.devnull, "a") as log, \
            tqdm(total=iterations, initial=start, desc=os.path.basename(run_dir), leave=False, dynamic_ncols=True,
                 disable=not (progress and is_main())) as bar:
        for it, (images, labels) in enumerate(loader, start=start):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            if cfg.get("channels_last"):
                images = images.contiguous(memory_format=torch.channels_last)
            lr = learning_rate(cfg, it)
            set_lr(opt, lr)
            try:
                loss, parts = train_step(forward, opt, images, labels, cfg, device, it / iterations, world_size)
            except NonFiniteLoss as err:
                raise NonFiniteLoss(f"{err} at iteration {it}") from None
            bar.update(1)
            done = it + 1
            if done % LOG_EVERY == 0 or done == iterations:  # the loss parts are read here only
                bar.set_postfix(loss=f"{loss.item():.3f}")
                log.write(json.dumps({"iteration": done, "loss": loss.item(), "lr": lr,
                                      **{k: float(v) for k, v in parts.items()}}) + "\n")
                log.flush()
            if done % cfg["checkpoint_every"] == 0 and done < iterations:
                sync()
                now = time.perf_counter()
                save_checkpoint(ckpt_path, model, opt, done, elapsed + now - tick, device)
                elapsed, tick = elapsed + now - tick, time.perf_counter()
                if done == stop_at:
                    return None
        sync()
        elapsed += time.perf_counter() - tick
    if is_main():
        atomic_save(model.state_dict(), os.path.join(run_dir, "model.pt"))
        if os.path.exists(ckpt_path):
            os.remove(ckpt_path)
    barrier()
    # back to the layout a model loaded from model.pt has, so evaluating it now gives the very
    # numbers a later evaluation of the saved model gives
    model.to(memory_format=torch.contiguous_format)
    return {"train_img_per_s": iterations * cfg["batch_size"] / elapsed if elapsed > 0 else float("nan"),
            "train_s": elapsed}
