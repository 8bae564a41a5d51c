"""Execution: the plans not yet done, trained and evaluated side by side (--jobs worker processes,
each a device of its own on a GPU box) or as cluster jobs (--launcher), then timed (engine/timing.py), and
their rows written. Workers: the worker processes of one run_all call, shared by the ablations it runs
side by side, and the machine's lock that gives each timing phase the machine alone. Also the process
hygiene that keeps a killed suite resumable: workers that die with their parent, temporary files of
killed writers removed.
"""
import concurrent.futures as cf
import contextlib
import hashlib
import multiprocessing
import os
import random
import threading

import torch
from tqdm import tqdm

from engine import one_run
from engine.distributed import barrier, is_main
from engine.orphans import name_parent, unname_parent
from engine.plans import config_hash, todo_plans
from engine.rows import make_row, put_row
from engine.timing import needs_timing, time_runs
from files import git_sha, read_json, write_json


def worker_devices(device):
    """The devices --jobs workers take in turn: every visible GPU for 'cuda', else just `device`."""
    if device == "cuda":
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or [device]
    return [device]


def start_worker(devices, counter):
    """Worker initializer: the next device in turn (worker k: devices[k % len]), so with --device
    cuda each worker has a GPU of its own."""
    with counter.get_lock():
        one_run.WORKER_DEVICE, counter.value = devices[counter.value % len(devices)], counter.value + 1


class Workers:
    """--jobs worker processes, started once for every ablation of a run_all call (no pool to start per
    look), and the machine's lock. Runs share the machine, one per worker: submit() waits for a free
    worker and counts the run as busy until it ends, and shared() counts work the calling process does
    itself (an ablation's analyses) the same way; nothing queues behind the workers, so ablations side
    by side take turns run by run. A timing phase has the machine alone: alone() holds new work back,
    waits for the runs under way, and times, so speeds are measured on a machine otherwise idle, as when
    the ablations ran one after another."""

    def __init__(self, jobs, device):
        context = multiprocessing.get_context("spawn")
        name_parent()  # the workers end with this process, even while they start
        self.pool = cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=start_worker,
                                           initargs=(worker_devices(device), context.Value("i", 0)))
        self.state = threading.Condition()
        self.jobs, self.busy, self.timing = jobs, 0, False

    def _enter(self):
        with self.state:
            self.state.wait_for(lambda: not self.timing and self.busy < self.jobs)
            self.busy += 1

    def _leave(self, _future=None):
        with self.state:
            self.busy -= 1
            self.state.notify_all()

    def submit(self, fn, *args):
        self._enter()
        try:
            future = self.pool.submit(fn, *args)
        except BaseException:
            self._leave()
            raise
        future.add_done_callback(self._leave)
        return future

    @contextlib.contextmanager
    def shared(self):
        self._enter()
        try:
            yield
        finally:
            self._leave()

    @contextlib.contextmanager
    def alone(self):
        with self.state:
            self.state.wait_for(lambda: not self.timing)  # one timing phase at a time
            self.timing = True  # no new work from here on
            self.state.wait_for(lambda: self.busy == 0)
        try:
            yield
        finally:
            with self.state:
                self.timing = False
                self.state.notify_all()

    def close(self, wait=True):
        """Shut the workers down; wait=False (Ctrl-C, an error): the runs under way are stopped, not
        waited for (a rerun resumes them from their checkpoints)."""
        if not wait:
            for process in list(self.pool._processes.values()):  # the executor has no public way to stop them
                process.terminate()
        self.pool.shutdown(wait=wait, cancel_futures=not wait)
        unname_parent()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(out_dir):
    """Temporary files of writers that were killed mid-write (`<file>.<pid>.tmp` whose pid is gone)."""
    for folder, _, files in os.walk(out_dir):
        for name in files:
            parts = name.split(".")
            if name.endswith(".tmp") and len(parts) >= 3 and parts[-2].isdigit() and not pid_alive(int(parts[-2])):
                os.remove(os.path.join(folder, name))


class RunJob:
    """One run group as a cluster job (engine/tools/launch.py): train, evaluate and time it, then write
    its rows into the run folder (rows-<id>.json) for the submitting process to merge. Requeued at
    its time limit, it resumes from the run's checkpoint."""

    def __init__(self, plans, out_dir, device, sha, started, reference_ms=None):
        self.plans, self.out_dir, self.device, self.sha, self.started = plans, out_dir, device, sha, started
        self.reference_ms = reference_ms

    def rows_path(self):
        keys = sorted(list(p.key) for p in self.plans)
        return os.path.join(one_run.run_dir_of(self.out_dir, self.plans[0]), f"rows-{config_hash(keys)}.json")

    def __call__(self):
        results = list(one_run.run_group(self.plans, self.out_dir, self.device, progress=False))
        timed = [result for result in results if result.ok and needs_timing(result.plan)]
        for result, speed in zip(timed, time_runs([r.plan for r in timed], self.out_dir, self.device)):
            result.scores = {**result.scores, **speed}  # the job has its node to itself
        write_json([make_row(result, self.sha, self.started, self.reference_ms) for result in results],
                   self.rows_path())
        return self.rows_path()

    def checkpoint(self, *args, **kwargs):
        """submitit calls this at the time limit (or on preemption): the same job again; training
        resumes from ckpt.pt and finished evaluations are kept."""
        import submitit
        return submitit.helpers.DelayedSubmission(self)


def timing_order(name, what, results):
    """The timing phase's order: shuffled by a seed drawn from the ablation and the look (recorded in
    each row with the run's position: the order the models are warmed up in; each round of timed
    passes is shuffled again from the same seed, engine/timing.py), so that no variant is always
    timed first or last, or in the order of its x (a loaded machine's drift would otherwise read as a
    speed-up)."""
    seed = int(hashlib.sha1(f"{name}:{what}".encode()).hexdigest()[:8], 16)
    results = sorted(results, key=lambda r: (r.plan.seed, r.plan.variant, r.plan.eval_id))
    random.Random(seed).shuffle(results)
    return seed, results


def run_plans(name, plans, csv_path, out_dir, device, jobs, progress, what, started=None, launcher=None,
              workers=None, reference_ms=None):
    """Train, evaluate and time the plans not yet done; returns the number of rows written. With a
    launcher (engine/tools/launch.py), each run group is a cluster job; its rows are merged here. With
    workers (Workers: run_all's, shared with other ablations), every run group goes to them; else
    --jobs > 1 starts workers for these plans alone."""
    groups = {}
    for plan in todo_plans(plans, csv_path):
        groups.setdefault(plan.run_id, []).append(plan)
    sha, written, timed = git_sha(), 0, []
    bar = tqdm(total=len(groups), desc=f"{name} runs, {what}", disable=not (progress and is_main()),
               dynamic_ncols=True)

    def record(results):
        nonlocal written
        for result in results:
            if result.ok and needs_timing(result.plan):
                timed.append(result)  # its row is written after the timing phase
                continue
            written += put_row(csv_path, make_row(result, sha, started, reference_ms))
            if not result.ok:
                tqdm.write(f"{name} {result.plan.variant} seed {result.plan.seed}: {result.status} ({result.error})")
        bar.update(1)

    if launcher:
        from engine.tools.launch import run_jobs
        paths = run_jobs(launcher, [RunJob(g, out_dir, device, sha, started, reference_ms) for g in groups.values()],
                         f"{name}-{what.replace(' ', '-').replace('/', '-of-')}")
        for path in paths:
            for row in read_json(path):
                written += put_row(csv_path, row)
                if row["status"] != "ok":
                    tqdm.write(f"{name} {row['variant']} seed {row['seed']}: {row['status']}")
            bar.update(1)
    elif workers is None and (jobs <= 1 or len(groups) <= 1):
        for group in groups.values():
            record(one_run.run_group(group, out_dir, device, progress=progress))
    else:
        pool, futures = workers or Workers(jobs, device), set()
        try:
            for group in groups.values():
                futures.add(pool.submit(one_run.run_group, group, out_dir, device, False))  # waits for a worker
                for future in [f for f in futures if f.done()]:
                    futures.remove(future)
                    record(future.result())
            for future in cf.as_completed(futures):
                record(future.result())
        except BaseException:
            if pool is not workers:
                pool.close(wait=False)
            raise
        if pool is not workers:
            pool.close()
    bar.close()
    order_seed, timed = timing_order(name, what, timed)
    with workers.alone() if workers and timed else contextlib.nullcontext():
        speeds = time_runs([result.plan for result in timed], out_dir, device, order_seed)
        for position, (result, speed) in enumerate(zip(timed, speeds)):
            result.scores = {**result.scores, **speed, "timing_order_seed": order_seed, "timing_position": position}
            written += put_row(csv_path, make_row(result, sha, started, reference_ms))
    barrier()  # every rank reads the rows rank 0 wrote
    return written
