"""Run groups as cluster jobs: `run_all.py --launcher slurm` submits each run (with its evaluations)
as one submitit job, all of a look as one job array; `--launcher local` runs the same path through
submitit's LocalExecutor (processes on this machine), which is how the tests exercise it on a CPU.

Each job writes its rows into its run folder (engine/workers.py RunJob); the submitting process
waits for the jobs and merges the rows into the CSV, so only one process ever writes it (file locks
are not reliable on NFS). A job that reaches its time limit is requeued by submitit and resumes from
its run's checkpoint (RunJob.checkpoint). submitit is imported only when a launcher is chosen.
"""
import os

LAUNCHERS = ("slurm", "local")
OPTION_KEYS = ("partition", "gpus_per_run", "cpus_per_run", "time_min", "folder")


def check_launcher(options):
    """The launcher options from the command line, checked: {"name", "partition", "gpus_per_run",
    "cpus_per_run", "time_min", "folder"}."""
    if options["name"] not in LAUNCHERS:
        raise ValueError(f"unknown launcher {options['name']!r}; choose one of: {', '.join(LAUNCHERS)}")
    unknown = sorted(set(options) - set(OPTION_KEYS) - {"name"})
    if unknown:
        raise ValueError(f"unknown launcher option(s) {unknown}; valid: {', '.join(OPTION_KEYS)}")
    for key in ("gpus_per_run", "cpus_per_run", "time_min"):
        if not (isinstance(options.get(key), int) and options[key] >= (0 if key == "gpus_per_run" else 1)):
            raise ValueError(f"launcher option {key} must be a whole number (>= 1; GPUs >= 0), got {options.get(key)!r}")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise RuntimeError("--launcher needs the submitit package: pip install submitit") from None
    return options


def executor(options, what):
    """A submitit executor for the options (check_launcher's); job logs under options['folder']/<what>."""
    import submitit
    ex = submitit.AutoExecutor(folder=os.path.join(options["folder"], what), cluster=options["name"])
    params = {"timeout_min": options["time_min"], "gpus_per_node": options["gpus_per_run"],
              "cpus_per_task": options["cpus_per_run"], "tasks_per_node": 1, "nodes": 1, "name": what}
    if options["name"] == "slurm":
        params["slurm_partition"] = options.get("partition")
        params["slurm_additional_parameters"] = {"requeue": True}  # a job at its time limit comes back
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def run_jobs(options, jobs, what):
    """Submit the jobs (callables) as one array and wait; their return values, in order. A job that
    failed raises here with its error (submitit keeps its log under options['folder'])."""
    if not jobs:
        return []
    ex = executor(options, what)
    with ex.batch():
        submitted = [ex.submit(job) for job in jobs]
    return [job.result() for job in submitted]
