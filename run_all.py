"""Run segmentation ablations and build the report.

    python run_all.py --ablation gcn_k              # default preset 'quick', on the embedded dataset
    python run_all.py --ablation all --preset smoke
    python run_all.py --report-only                 # rebuild report/REPORT.md from results/*.csv
    python run_all.py --list
    python run_all.py --show-config gcn_k [k7] [--preset quick] [--set train.lr=0.01]   # what would run
"""
import argparse
import os
import sys
import threading

import engine  # noqa: F401  (first: pins MKL's code path before any tensor is computed)
from ablations import ABLATIONS, load
from data import DATASETS
from engine.presets import PRESETS


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
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="set any allowed setting of every variant, laid over all other layers (engine/config.py), "
                        "e.g. train.lr=0.01, model.head_width=32, data.n_train=500, seeds=2; values are JSON "
                        "(repeatable; part of the run id)")
    p.add_argument("--show-config", nargs="+", metavar=("ABLATION", "VARIANT"),
                   help="print each resolved plan of ABLATION (or of one VARIANT) — data, model, train, eval, "
                        "run and eval ids — and exit without training")
    p.add_argument("--weights", help="local backbone weights file (instead of torchvision's ImageNet cache)")
    p.add_argument("--compile", action="store_true",
                   help="train every run through torch.compile (train.compile: new run ids; needs a C++ compiler on CPU)")
    p.add_argument("--amp", choices=["bf16"], help="train under bfloat16 autocast (train.amp: new run ids)")
    p.add_argument("--channels-last", action="store_true",
                   help="train in channels_last memory format (train.channels_last; the CPU presets already do)")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda (with --jobs: each worker takes the next visible GPU) or cuda:N (default: cpu)")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs trained side by side in separate processes (default: the CPU's cores; 1 on a GPU); "
                        "under torchrun the processes train each run together instead")
    p.add_argument("--launcher", choices=["slurm", "local"],
                   help="run each training run as a submitit job (slurm: a job array per look; local: "
                        "processes on this machine through submitit's LocalExecutor); needs submitit")
    p.add_argument("--partition", help="SLURM partition (--launcher slurm)")
    p.add_argument("--gpus-per-run", type=int, help="GPUs per job (--launcher; default 1 with --device cuda, else 0)")
    p.add_argument("--cpus-per-run", type=int, default=4, help="CPUs per job (--launcher; default 4)")
    p.add_argument("--time-limit", type=int, default=240,
                   help="minutes per job before it is requeued and resumes from its checkpoint (--launcher; default 240)")
    p.add_argument("--out", default="results", help="results folder (default: results)")
    p.add_argument("--report-dir", help="where REPORT.md goes (default: report for --out results, else "
                                         "OUT/report, so a scratch run never overwrites the committed report)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the report from the CSVs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true",
                   help="with --preset paper: prove each ablation's paper run starts (stand-in data in the real "
                        "layout, 2 iterations at the paper's crop, checkpoint and resume, 2 val images) and print "
                        "its cost; writes nothing into --out")
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
    if args.report_dir is None:
        args.report_dir = "report" if os.path.abspath(args.out) == os.path.abspath("results") \
            else os.path.join(args.out, "report")
    if args.show_config:
        if len(args.show_config) > 2:
            p.error(f"--show-config takes ABLATION [VARIANT], got {' '.join(args.show_config)}")
        if args.show_config[0] not in ABLATIONS:
            p.error(f"unknown ablation {args.show_config[0]!r}; choose from: {', '.join(ABLATIONS)}")
    if not (args.ablation or args.list or args.report_only or args.show_config):
        p.error("nothing to do: give --ablation NAME (or all), --list, --show-config or --report-only")
    if args.jobs is not None and args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        p.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")
    return args


# what a user can get wrong (arguments, data, results files, paths): one line on stderr, exit code 2
USER_ERRORS = (ValueError, OSError, RuntimeError)


def fail(err, name=None):
    """Print a user error as one line (`run_all.py: [<ablation>: ]error: ...`); returns exit code 2."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    print(f"run_all.py: {name + ': ' if name else ''}error: {text}", file=sys.stderr)
    return 2


def check_folder(flag, path):
    """Fail before any work on an output folder that cannot be made or written to. Creates nothing."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise NotADirectoryError(f"{flag} {path}: cannot be a folder, {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {path}: cannot write in {probe}")


def load_checked(name):
    """ablations.load(name), the report sections the file names checked too (the report registers them)."""
    from report.build import check_sections
    return check_sections(load(name))


def command_line(args):
    """The options that make a run's configuration (engine/config.py's layer 6)."""
    from engine.config import CommandLine, parse_set
    return CommandLine(seeds=args.seeds, iterations=args.iterations, data=args.data, data_root=args.data_root,
                       weights=args.weights, compile=args.compile, amp=args.amp, channels_last=args.channels_last,
                       sets=tuple(parse_set(text) for text in args.sets))


def run_ablations(todo, args, jobs, launcher, reference_ms=None):
    """Run the prepared ablations (name → prepared); returns (name, error) of the first that failed, or
    None. With --jobs > 1 on this machine, the chains of ablations that share no run (engine/one_ablation.py
    chains) go side by side, each in its order, their runs taking turns on one set of worker processes
    and each timing phase with the machine alone (engine/workers.py Workers): while one ablation waits
    for a look's last run, the others' runs keep the cores busy."""
    from engine import distributed
    from engine.workers import Workers
    from engine.one_ablation import chains, run_ablation
    errors, crashes = {}, []

    def run_chain(names, workers=None):
        for name in names:
            try:
                written = run_ablation(todo[name], args.out, args.device, jobs, not args.no_progress, launcher, workers,
                                       reference_ms)
            except USER_ERRORS as err:
                errors[name] = err
                return
            if distributed.is_main():
                # one write: lines of ablations that finish together do not interleave
                sys.stdout.write(f"{name}: {written} new row(s) in {os.path.join(args.out, name + '.csv')}\n")
                sys.stdout.flush()

    if jobs <= 1 or launcher:
        run_chain(list(todo))
    else:
        workers = Workers(jobs, args.device)

        def lane(names):
            try:
                run_chain(names, workers)
            except BaseException as err:  # a bug, not bad input: raised again in the main thread
                crashes.append(err)

        lanes = [threading.Thread(target=lane, args=(names,), daemon=True) for names in chains(todo)]
        try:
            for thread in lanes:
                thread.start()
            for thread in lanes:
                while thread.is_alive():  # joined in steps, so Ctrl-C still ends the call
                    thread.join(0.5)
        except BaseException:  # Ctrl-C: no waiting for the runs under way (a rerun resumes them)
            workers.close(wait=False)
            raise
        workers.close()
        if crashes:
            raise crashes[0]
    return next(((name, errors[name]) for name in todo if name in errors), None)


def reference_speed(args, launcher):
    """ms of the reference step (benchmarks/train_step.py REFERENCE) on this machine, timed before any
    run so it has the machine alone; None where the runs train elsewhere (a GPU, cluster jobs, torchrun)."""
    from engine import distributed
    if args.device != "cpu" or launcher or distributed.world()[1] > 1:
        return None
    from benchmarks.train_step import REFERENCE, reference_step_ms
    try:
        return round(reference_step_ms(), 2)
    except (OSError, ValueError, RuntimeError) as err:  # e.g. its stand-in weights missing: the runs go on
        print(f"run_all.py: the reference step ({REFERENCE[0]}) was not timed, so the rows get no reference_step_ms "
              f"and the report no normalised wall time: {str(err).splitlines()[0]}", file=sys.stderr)
        return None


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        code = 0
        for name in ABLATIONS:  # a broken file is its line; the others are listed
            try:
                line = f"{name:14s} {load_checked(name).title}"
            except USER_ERRORS as err:
                code = fail(err)
                continue
            print(line)  # a closed pipe (`--list | head`) ends the listing: command() says nothing of it
        return code
    if args.show_config:
        from engine.config import settings
        from engine.plans import prepare, show_config
        try:
            spec = load_checked(args.show_config[0])
            prepared = prepare(spec, settings(spec, args.preset, command_line(args)), args.out, with_data=False)
            print(show_config(prepared, args.out, *args.show_config[1:]))
        except USER_ERRORS as err:
            return fail(err, args.show_config[0])
        return 0
    if args.dry_run:
        if args.preset != "paper":
            return fail(f"--dry-run checks the paper preset: add --preset paper (got {args.preset})")
        from engine.tools.dryrun import dry_run_alone, summary
        for name in args.ablation:
            try:
                print(summary(dry_run_alone(load, name, args.data, args.weights, args.device)), flush=True)
            except USER_ERRORS as err:
                return fail(err, name)
        return 0
    from report.build import build, read_results
    # Everything that can be checked is checked before anything is trained or written: the output
    # folders, every results file the report reads, each ablation's settings and data.
    try:
        if args.report_only and not os.path.isdir(args.out):
            raise FileNotFoundError(f"results folder {args.out} not found (--out)")
        if not args.report_only:
            check_folder("--out", args.out)
        check_folder("--report-dir", args.report_dir)
        check_folder("--report-dir", os.path.join(args.report_dir, "figures"))
        # an ablation file that does not load blocks no other: the report is built without it
        specs, broken = [], {}
        for name in ABLATIONS:
            try:
                specs.append(load_checked(name))
            except ValueError as err:
                broken[name] = err
        asked = [name for name in args.ablation if name in broken]
        if asked:
            return fail(broken[asked[0]], asked[0])
        for err in broken.values():
            print(f"run_all.py: {'error' if args.report_only else 'warning'}: {err}; left out of the report",
                  file=sys.stderr)
        read_results(args.out, specs)
    except USER_ERRORS as err:
        return fail(err)
    from engine import distributed
    if not args.report_only:
        import torch

        from engine.config import settings
        from engine.plans import prepare
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            return fail("--device cuda given but torch sees no CUDA device")
        # one thread per run (the presets' train.threads), so as many runs side by side as cores
        jobs = args.jobs or ((os.cpu_count() or 1) if args.device == "cpu" else 1)
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: the processes train each run together
            if args.jobs not in (None, 1):
                return fail("--jobs with torchrun: the processes already share each run; give one or the other")
            jobs, args.device = 1, distributed.init_from_env(args.device)
        launcher = None
        if args.launcher:
            from engine.tools.launch import check_launcher
            try:
                launcher = check_launcher({"name": args.launcher, "partition": args.partition,
                                           "gpus_per_run": args.gpus_per_run if args.gpus_per_run is not None
                                           else int(args.device.startswith("cuda")), "cpus_per_run": args.cpus_per_run,
                                           "time_min": args.time_limit, "folder": os.path.join(args.out, "jobs")})
            except USER_ERRORS as err:
                return fail(err)
        # every ablation is planned and checked (models, options, budget, data) before any is run
        todo, checked = {}, set()
        for name in args.ablation:
            try:
                spec = load_checked(name)
                todo[name] = prepare(spec, settings(spec, args.preset, command_line(args)), args.out, checked)
            except USER_ERRORS as err:
                return fail(err, name)
        failed = run_ablations(todo, args, jobs, launcher, reference_speed(args, launcher))
        if failed:
            return fail(failed[1], failed[0])
    try:
        if distributed.is_main():
            from engine.workers import remove_stale_tmp
            remove_stale_tmp(args.report_dir)  # a killed report write's REPORT.md.<pid>.tmp, figures'
            print(f"report: {build(args.out, args.report_dir, specs)}")
    except USER_ERRORS as err:
        return fail(err)
    finally:
        distributed.finish()
    return 2 if broken and args.report_only else 0


def command(argv=None):
    """main() as a command: Ctrl-C ends it with one line that says how to resume, exit code 130, at
    once: the workers' runs under way are stopped, not waited for (engine/workers.py Workers.close);
    finished rows, runs and checkpoints are kept."""
    try:
        return main(argv)
    except BrokenPipeError:  # the reader of stdout has gone (`| head`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except KeyboardInterrupt:
        print("run_all.py: interrupted; run the same command again to resume (finished runs are kept, "
              "unfinished ones go on from their last checkpoint)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(command())
