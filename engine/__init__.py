"""How a run is planned, trained, evaluated, recorded and judged (README's Layout lists the modules).

Importing the engine pins MKL to one code path (engine/reproducible.py) before any tensor is
computed, so every process that runs the suite computes the same numbers on any CPU of one capability;
and tells glibc's malloc to keep freed memory for reuse (engine/allocator.py: faster steps, same numbers).
"""
from engine.allocator import keep_freed_memory
from engine.reproducible import pin_mkl

pin_mkl()
keep_freed_memory()
