"""Run segmentation ablations and build the report.

    python run_all.py --ablation gcn_k              # default preset 'quick', on the embedded dataset
    python run_all.py --ablation all --preset smoke
    python run_all.py --report-only                 # rebuild report/REPORT.md from results/*.csv
    python run_all.py --list
"""
import argparse
import os
import sys

from ablations import ABLATIONS, load
from ablations.presets import PRESETS
from data import DATASETS


class OneLineErrors(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"run_all.py: error: {message}\n")


def parse_args(argv):
    p = OneLineErrors(description="Reproduce the ablation studies of GCN, PSPNet, Layer Cascade and DeepLab v1.")
    p.add_argument("--ablation", action="append", default=[], metavar="NAME",
                   help=f"ablation to run (repeatable): {', '.join(ABLATIONS)} or all")
    p.add_argument("--list", action="store_true", help="list the ablations and exit")
    p.add_argument("--preset", default="quick", choices=list(PRESETS), help="run size (default: quick)")
    p.add_argument("--seeds", type=int, help="number of seeds (default: the preset's)")
    p.add_argument("--iterations", type=int, help="training iterations per run (default: the preset's)")
    p.add_argument("--data", choices=DATASETS, help="dataset (default: the preset's)")
    p.add_argument("--data-root", help="folder holding the real dataset")
    p.add_argument("--weights", help="local backbone weights file (instead of torchvision's ImageNet cache)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs trained side by side in separate processes (default: the CPU's cores; 1 on a GPU)")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--report-dir", default="report", help="where REPORT.md goes (default: report)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the CSVs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    names = []
    for name in args.ablation:
        if name == "all":
            names += list(ABLATIONS)
        elif name not in ABLATIONS:
            p.error(f"unknown ablation {name!r}; choose from: {', '.join(ABLATIONS)}, all")
        else:
            names.append(name)
    args.ablation = list(dict.fromkeys(names))
    if not (args.ablation or args.list or args.report_only):
        p.error("nothing to do: give --ablation NAME (or all), --list or --report-only")
    if args.jobs is not None and args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        p.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name in ABLATIONS:
            print(f"{name:14s} {load(name).TITLE}")
        return 0
    from report.build import build
    if not args.report_only:
        import torch

        from ablations.runs import preset_config, run_ablation
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            print("run_all.py: error: --device cuda given but torch sees no CUDA device", file=sys.stderr)
            return 2
        # one thread per run (the presets' train.threads), so as many runs side by side as cores
        jobs = args.jobs or ((os.cpu_count() or 1) if args.device == "cpu" else 1)
        for name in args.ablation:
            spec = load(name)
            try:
                cfg = preset_config(spec, args.preset, args.seeds, args.data, args.data_root, args.weights,
                                    args.iterations)
                written = run_ablation(spec, cfg, args.preset, args.out, args.device, jobs, not args.no_progress)
            except (ValueError, FileNotFoundError, RuntimeError) as err:
                print(f"run_all.py: {name}: error: {err}", file=sys.stderr)
                return 1
            print(f"{name}: {written} new row(s) in {os.path.join(args.out, name + '.csv')}")
    print(f"report: {build(args.out, args.report_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
