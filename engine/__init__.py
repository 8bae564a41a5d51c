"""How a run is planned, trained, evaluated, recorded and judged (README's Layout lists the modules).

Importing the engine pins MKL to one code path (engine/reproducible.py) before any tensor is
computed, so every process that runs the suite computes the same numbers on any CPU of one capability;
and tells glibc's malloc to keep freed memory for reuse (engine/allocator.py: faster steps, same numbers).
A --jobs worker checks first of all that the run_all process that started it is still there (engine/orphans.py).
"""
from engine.orphans import die_with_parent  # first: a worker whose parent is gone ends before any import

die_with_parent()

from engine.allocator import keep_freed_memory  # noqa: E402
from engine.reproducible import pin_mkl  # noqa: E402

pin_mkl()
keep_freed_memory()
