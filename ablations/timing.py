"""Training speed as a benchmark measures it, for the timing phase (ablations.runs.timing): the
same optimiser step as training, on one fixed batch, warm-up steps untimed, then `steps` timed
steps, synchronised on GPU. Run one plan at a time, with nothing else of the suite training, so a
ratio between variants (DeepLab's LargeFOV vs 7×7) compares the models, not the machine's load."""
import time

import torch

from ablations.train import autocast, compiled, param_groups


def time_training(model, dataset, cfg, steps, device="cpu", warmup=3):
    """Images per second of training steps of `model` with the train config `cfg`."""
    model.to(device).train()
    if cfg.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(param_groups(model, cfg["lr"], cfg["head_lr_mult"]), lr=cfg["lr"],
                          momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    batch = [dataset[(i, i)] for i in range(min(cfg["batch_size"], len(dataset)))]
    images = torch.stack([b[0] for b in batch]).to(device)
    labels = torch.stack([b[1] for b in batch]).to(device)
    if cfg.get("channels_last"):
        images = images.contiguous(memory_format=torch.channels_last)
    forward = compiled(model) if cfg.get("compile") else model  # compiled in the warm-up steps
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for step in range(warmup + steps):
        if step == warmup:
            sync()
            tick = time.perf_counter()
        with autocast(cfg, device):
            loss, _ = forward(images, labels)  # the loss through forward, as in training
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return steps * len(images) / (time.perf_counter() - tick)
