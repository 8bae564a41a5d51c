"""Region convolution vs dense convolution: time against the active fraction of the map.

For each active fraction (0, 0.1, …, 1) a random mask of that many positions is drawn; the region
path computes only those positions (gathered k×k windows × weight matrix, segmodels/region_conv.py),
the dense path is the ordinary convolution of the whole map, and the dispatched path is what the
cascade runs: the region path up to DENSE_ABOVE of the positions active, the dense convolution read
at the region above. Two layers are timed: one 3×3 conv and one residual unit (two 3×3 convs with
BN, ReLU and the skip). Times are medians over
repetitions after a warm-up, synchronised on GPU; the region times include building the region
(indices) and the layout changes from and to NCHW, which a cascade stage pays once, not per layer.
The six calls take turns in every repetition, so a busy machine slows them alike; on a shared
CPU `--clock cpu` measures CPU time (the work done) instead of wall time.

    python -m benchmarks.region_conv                          # CPU: 50 maps of 16×16, 64 channels
    python -m benchmarks.region_conv --device cuda --size 512  # GPU: one 512×512 map
    python -m benchmarks.region_conv --device cuda --size 64 --channels 1024  # the paper's stride-8 map of a 512 input

--size is the side of the feature map the convolution runs on; by default the batch holds about
12,800 positions (50 maps of 16×16: the quick preset's evaluation batch at output stride 8).

Writes a table to stdout and a CSV (--csv, default results/region_conv_<device>_<size>.csv).
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

from segmodels.cascade import ResidualUnit
from segmodels.region_conv import DENSE_ABOVE, region_conv2d, region_residual


def median_times(fns, device, warmup, repeats, clock=time.perf_counter):
    """Median ms of each function; the functions take turns in every repetition, so a busy machine
    slows them alike."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        for fn in fns:
            fn()
    sync()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            tick = clock()
            fn()
            sync()
            out.append(1000 * (clock() - tick))
    return [statistics.median(t) for t in times]


def random_mask(batch, size, fraction, generator, device):
    """A mask with exactly round(fraction · positions) active positions, spread at random."""
    n = batch * size * size
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=generator)[:round(fraction * n)]] = True
    return mask.view(batch, size, size).to(device)


@torch.no_grad()
def run(device="cpu", size=16, channels=64, batch=50, dilation=1, warmup=3, repeats=20, seed=0, clock="wall"):
    """One row per active fraction: dense, region and dispatched times (ms) of a conv and a residual unit."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False).to(device).eval()
    unit = ResidualUnit(channels, dilation).to(device).eval()
    x = torch.relu(torch.randn(batch, channels, size, size, device=device))
    timer = time.process_time if clock == "cpu" else time.perf_counter
    rows = []
    for i in range(11):
        fraction = i / 10
        mask = random_mask(batch, size, fraction, g, device)
        dense_c, region_c, dispatched_c, dense_u, region_u, dispatched_u = median_times(
            [lambda: conv(x), lambda: region_conv2d(conv, x, mask, math.inf), lambda: region_conv2d(conv, x, mask),
             lambda: unit(x), lambda: region_residual(unit, x, mask, math.inf),
             lambda: region_residual(unit, x, mask)], device, warmup, repeats, timer)
        rows.append({"device": device, "size": size, "channels": channels, "batch": batch, "dilation": dilation,
                     "clock": clock, "dense_above": DENSE_ABOVE, "active_fraction": fraction,
                     "dense_conv_ms": dense_c, "region_conv_ms": region_c, "dispatched_conv_ms": dispatched_c,
                     "conv_speedup": dense_c / region_c, "dispatched_conv_speedup": dense_c / dispatched_c,
                     "dense_unit_ms": dense_u, "region_unit_ms": region_u, "dispatched_unit_ms": dispatched_u,
                     "unit_speedup": dense_u / region_u, "dispatched_unit_speedup": dense_u / dispatched_u})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--size", type=int, default=16, help="feature map height = width (default 16)")
    p.add_argument("--channels", type=int, default=64, help="input = output channels (default 64)")
    p.add_argument("--batch", type=int, help="maps per call (default: about 12,800 positions, at least 1)")
    p.add_argument("--dilation", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time (default) or, on a shared CPU, the process's CPU time (work done)")
    p.add_argument("--csv", help="output CSV (default results/region_conv_<device>_<size>.csv)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but torch sees no CUDA device")
    if args.batch is None:
        args.batch = max(1, round(12800 / args.size ** 2))
    if min(args.size, args.channels, args.batch, args.repeats, args.dilation) < 1:
        p.error("--size, --channels, --batch, --repeats and --dilation must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and args.device != "cpu":
        p.error("--clock cpu measures CPU time: use it with --device cpu")
    rows = run(args.device, args.size, args.channels, args.batch, args.dilation, args.warmup, args.repeats,
               clock=args.clock)
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)"
    print(f"region vs dense, {name}: batch {args.batch} × {args.channels} ch × {args.size}², 3×3 conv at "
          f"dilation {args.dilation}; median {args.clock} time of {args.repeats} after {args.warmup} warm-up (ms)")
    print(f"speed-up = dense / other; dispatched = region up to {DENSE_ABOVE:.0%} active, dense above")
    print(f"{'active':>6} | {'conv: dense':>11} {'region':>7} {'dispatched':>10} {'speed-ups':>13} | "
          f"{'unit: dense':>11} {'region':>7} {'dispatched':>10} {'speed-ups':>13}")
    for r in rows:
        print(f"{r['active_fraction']:6.1f} | {r['dense_conv_ms']:11.3f} {r['region_conv_ms']:7.3f} "
              f"{r['dispatched_conv_ms']:10.3f} {r['conv_speedup']:5.2f}× {r['dispatched_conv_speedup']:5.2f}× | "
              f"{r['dense_unit_ms']:11.3f} {r['region_unit_ms']:7.3f} {r['dispatched_unit_ms']:10.3f} "
              f"{r['unit_speedup']:5.2f}× {r['dispatched_unit_speedup']:5.2f}×")
    path = args.csv or os.path.join("results", f"region_conv_{args.device.replace(':', '')}_{args.size}.csv")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    import pandas as pd
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
