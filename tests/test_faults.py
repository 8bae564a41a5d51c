"""Faults by really killing processes: a killed run_all takes its workers with it, and a rerun
resumes and finishes; a killed writer's temporary files are cleaned up."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from engine.workers import remove_stale_tmp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def live_processes():
    """(pid, the fields of /proc/<pid>/stat after its name: state, ppid, pgrp, session, ...) of every
    live process."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                yield int(entry), fields


def children(pid):
    """Pids of the live processes whose parent is `pid`."""
    return [child for child, fields in live_processes() if int(fields[1]) == pid]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process parents from /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_parent_takes_its_workers_and_a_rerun_finishes(tmp_path, sig):
    out = tmp_path / "results"
    argv = [sys.executable, "run_all.py", "--ablation", "gcn_k", "--preset", "smoke", "--iterations", "40",
            "--jobs", "2", "--out", str(out), "--report-dir", str(tmp_path / "report"), "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    parent = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # two pool workers (plus multiprocessing's resource tracker), and a checkpoint written
        assert wait_for(lambda: len(children(parent.pid)) >= 3 and any(
            (d / "ckpt.pt").exists() for d in (out / "runs").glob("*")), 120), "workers never started training"
        workers = children(parent.pid)
        parent.send_signal(sig)
        parent.wait(30)
        assert wait_for(lambda: not any(alive(w) for w in workers), 15), "workers outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
    done_before = len(pd.read_csv(out / "gcn_k.csv")) if (out / "gcn_k.csv").exists() else 0
    assert done_before < 8
    stale = out / "runs" / "gcn_k.csv.999999999.tmp"  # a killed writer's leftover (that pid is not alive)
    stale.write_text("half a row")
    rerun = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    rows = pd.read_csv(out / "gcn_k.csv")
    assert len(rows) == 8 and set(rows["status"]) == {"ok"}
    assert not stale.exists()


def test_only_dead_writers_tmp_files_are_removed(tmp_path):
    dead, live = tmp_path / "a.csv.999999999.tmp", tmp_path / f"b.csv.{os.getpid()}.tmp"
    other = tmp_path / "notes.tmp"  # not a writer's temporary file: left alone
    for f in (dead, live, other):
        f.write_text("x")
    remove_stale_tmp(str(tmp_path))
    assert not dead.exists() and live.exists() and other.exists()


def session_alive(sid):
    """Pids of the live processes of session `sid` (a process started with start_new_session and
    everything it started, whoever their parent is now)."""
    return [pid for pid, fields in live_processes() if int(fields[3]) == sid]


def start_jobs_2(tmp_path):
    """run_all --jobs 2 in a session of its own; (process, its workers' pids once both are started)."""
    argv = [sys.executable, "run_all.py", "--ablation", "gcn_k", "--preset", "smoke", "--iterations", "40",
            "--jobs", "2", "--out", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report"),
            "--no-progress"]
    parent = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    def spawned():
        found = []
        for child in children(parent.pid):
            try:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    found += [child] if b"spawn_main" in f.read() else []
            except OSError:  # ended meanwhile
                pass
        return found
    try:
        assert wait_for(lambda: len(spawned()) >= 2, 120), "no workers started"
    except BaseException:
        parent.kill()
        raise
    return parent, spawned()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process sessions from /proc (Linux)")
def test_parent_killed_while_its_workers_start_takes_them(tmp_path):
    parent, workers = start_jobs_2(tmp_path)
    parent.kill()  # SIGKILL, the moment the second worker is there: both are still importing torch
    parent.wait(10)
    # nothing of the call survives: workers and multiprocessing's resource tracker
    assert wait_for(lambda: not session_alive(parent.pid), 10), f"outlived their parent: {session_alive(parent.pid)}"
    assert not (tmp_path / "results" / "gcn_k.csv").exists()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process sessions from /proc (Linux)")
def test_ctrl_c_is_one_line_saying_how_to_resume_and_exit_130(tmp_path):
    parent, workers = start_jobs_2(tmp_path)
    assert wait_for(lambda: any((tmp_path / "results" / "runs").glob("*/ckpt.pt")), 120), "never trained"
    os.killpg(parent.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to every process of the call
    _, err = parent.communicate(timeout=10)  # not waiting for the runs under way
    assert parent.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "run_all.py: interrupted; run the same command again to resume" in err, err
    assert wait_for(lambda: not session_alive(parent.pid), 10), f"outlived their parent: {session_alive(parent.pid)}"
