"""Files written whole or not at all, and what is stamped on them: the one module the data, the engine and
the report all write through.

Atomic writes (a temporary file beside the target, swapped in by one rename; a full disk is one line
saying what to do), file locks across processes, JSON records (read_checked_json / read_or_set_aside: a
damaged record is a DamagedFile, set aside under another name and computed again), and provenance (the
git sha, the device, the CPU model, the time now). It sits at the top of the repository, importing
nothing of it, because data/ writes its generated datasets atomically and must not import engine/ (the
flow is one way: engine → data), while the engine and the report need the same helpers.
"""
import contextlib
import datetime
import errno
import fcntl
import json
import os
import platform
import subprocess
import sys

REPO = os.path.dirname(os.path.abspath(__file__))


def atomic_write(path, write):
    """Write a file so that no reader and no crash ever sees it half written: `write(tmp_path)`
    writes a temporary file beside `path`, which then replaces `path` in one rename. The temporary
    name carries the writer's pid, so a killed writer's leftover can be told from a live one's
    (see engine.workers.remove_stale_tmp)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise OSError(disk_full(path)) from None
        raise
    except RuntimeError as err:  # torch.save's writer: "[enforce fail at inline_container.cc:672] ..."
        if "inline_container" in str(err) or "PytorchStreamWriter" in str(err):
            raise OSError(disk_full(path, f"torch could not write it: {str(err).splitlines()[0]}")) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def disk_full(path, what="no space left on the device"):
    """What to do when a file could not be written for want of space."""
    return (f"cannot write {path} ({what}): is its disk full? Free some space (or give --out a folder on "
            "another disk) and run the same command again: finished runs and checkpoints are kept")


@contextlib.contextmanager
def file_lock(path):
    """An exclusive lock held while the block runs (also across processes and invocations)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text(path, text):
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    atomic_write(path, write)


def write_json(obj, path):
    write_text(path, json.dumps(obj, indent=1, default=str))


def read_json(path):
    with open(path) as f:
        return json.load(f)


class DamagedFile(Exception):
    """A run-folder file (checkpoint, model, train.json, eval or timing JSON) that cannot be read as
    what it should be: it is set aside and what it held is computed again."""

    def __init__(self, path, reason):
        reason = " ".join(str(reason).split())[:200]
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def set_aside(damaged, then="what it held is computed again"):
    """Keep a DamagedFile under another name (<file>.damaged, .damaged-2, ...: nothing is deleted, and
    nothing reads it again) and say so, and what `then` happens, in one line; returns the new name."""
    new, n = f"{damaged.path}.damaged", 1
    while os.path.exists(new):
        n += 1
        new = f"{damaged.path}.damaged-{n}"
    os.replace(damaged.path, new)
    print(f"run_all.py: warning: {damaged.path} is damaged ({damaged.reason}); set aside as "
          f"{os.path.basename(new)}; {then}", file=sys.stderr, flush=True)
    return new


def read_checked_json(path, problem):
    """The JSON record in `path`, or DamagedFile if it is not JSON or `problem` finds one."""
    try:
        record = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        raise DamagedFile(path, f"not JSON: {err}") from None
    found = problem(record)
    if found:
        raise DamagedFile(path, found)
    return record


def read_or_set_aside(path, problem):
    """The checked JSON record in `path`; None if there is none, or if it was damaged (then set aside)."""
    if not os.path.exists(path):
        return None
    try:
        return read_checked_json(path, problem)
    except DamagedFile as damaged:
        set_aside(damaged)
        return None


# --- provenance ---------------------------------------------------------------------------

def git_sha():
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ablations", "engine", "segmodels", "data", "weights"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device):
    """'cpu', or the GPU's name and index (e.g. 'NVIDIA H200 (cuda:1)')."""
    if device == "cpu":
        return device
    import torch
    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    return f"{torch.cuda.get_device_name(index)} (cuda:{index})"


def cpu_model():
    """The CPU's model name (Linux), as a row's provenance beside its CPU capability."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor()


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
