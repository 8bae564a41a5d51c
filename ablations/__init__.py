"""What is compared: one declarative file per ablation, and nothing else (the engine is engine/).

The ablations are the files of this folder that set NAME (the file's name; shared helpers such as
psp_common.py do not): `run_all.py --ablation NAME` takes each, found here, named in no list; the report
takes them in ORDER (a whole number in the file; a file without one comes after those with one, by
name). A file is imported only when its ablation is asked for, each on its own: one that fails to import
(a syntax error, an exception) is one line naming the file and its line, and blocks no other ablation.
load() gives an ablation's checked, typed record (engine.spec.Ablation): a mistake in the file is one
line naming the file and the key. Adding an ablation is adding its file.
Run one ablation alone: python -m ablations NAME [run_all.py's options].
"""
import functools
import importlib
import math
import os
import re
import traceback

from engine.spec import from_module

FOLDER = os.path.dirname(os.path.abspath(__file__))


def ablation_files(folder=FOLDER):
    """The names of the ablation files in folder, in the report's order. Read as text, not imported (a
    broken file is still found, and fails alone when it is loaded)."""
    found = []
    for file in os.listdir(folder):
        if not file.endswith(".py") or file.startswith("_"):
            continue
        with open(os.path.join(folder, file), encoding="utf-8", errors="replace") as f:
            text = f.read()
        if re.search(r"^NAME\s*=", text, re.M):
            order = re.search(r"^ORDER\s*=\s*(\d+)", text, re.M)
            found.append((int(order[1]) if order else math.inf, file[:-3]))
    return tuple(name for _, name in sorted(found))


NAMES = ablation_files()
# name → its module, imported on first use (None until then; a test may put a module of its own here)
ABLATIONS = dict.fromkeys(NAMES)


def import_error(name, err):
    """One line for an ablation file that cannot be imported: the file (the ablation's, or the shared
    one it imports) and line where it failed, and what failed."""
    if isinstance(err, SyntaxError):
        where, line, what = err.filename or "", err.lineno, f"SyntaxError: {err.msg}"
    else:
        folders = {os.path.abspath(folder) for folder in __path__}
        frames = [f for f in traceback.extract_tb(err.__traceback__) if os.path.dirname(os.path.abspath(f.filename)) in folders]
        where, line = (frames[-1].filename, frames[-1].lineno) if frames else (f"{name}.py", None)
        what = f"{type(err).__name__} at import: {err}"
    where = f"ablations/{os.path.basename(where) or name + '.py'}" + (f" line {line}" if line else "")
    return f"{where}: {' '.join(what.split())} (fix the file; the other ablations run without it)"


def module_of(name):
    if ABLATIONS[name] is None:
        try:
            ABLATIONS[name] = importlib.import_module(f"ablations.{name}")
        except Exception as err:  # anything the file raises as it runs
            raise ValueError(import_error(name, err)) from None
    return ABLATIONS[name]


def load(name):
    """The checked record (engine.spec.Ablation) of ablation `name`."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from: {', '.join(ABLATIONS)}, all")
    return _checked(name)


@functools.cache
def _checked(name):
    return from_module(module_of(name))


def load_all():
    return [load(name) for name in ABLATIONS]

