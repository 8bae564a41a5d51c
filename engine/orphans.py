"""No orphan workers: a --jobs worker ends as soon as the run_all process that started it is gone
(kill, kill -9, a scheduler's SIGTERM, the OOM killer), so nothing goes on training into the
results folder, even a worker killed while it was still starting (importing torch takes seconds).

The parent names itself in the environment before it starts workers (PARENT_ENV); each spawned
worker reads it when it imports the engine, its first import, so before torch: a worker whose parent
is already gone ends there, the others watch it. Standard library only, for the same reason.
"""
import os
import signal
import threading
import time

PARENT_ENV = "SEGABL_WORKERS_OF"


def name_parent():
    """In the parent, before starting workers: the workers it spawns from now on watch this process."""
    os.environ[PARENT_ENV] = str(os.getpid())


def unname_parent():
    """In the parent, once its workers are shut down: processes it starts later are nobody's workers."""
    os.environ.pop(PARENT_ENV, None)


def die_with_parent():
    """In a spawned worker (the parent's pid in its environment, not its own): end now if the parent
    is gone, else end when it goes. Ctrl-C is the parent's to handle (a terminal sends it to every
    process of the call): the worker ignores it and ends with the parent, with no traceback of its own.
    Taken out of the environment, so the worker's own children (a DataLoader's) are not held to it."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None or int(parent) == os.getpid():
        return
    del os.environ[PARENT_ENV]
    parent = int(parent)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)
    if os.getppid() != parent:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()
