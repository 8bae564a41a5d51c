"""How a run is planned, trained, evaluated, recorded and judged (README's Layout lists the modules).

Importing the engine pins MKL to one code path (engine/reproducible.py) before any tensor is
computed, so every process that runs the suite computes the same numbers on any CPU of one capability.
"""
from engine.reproducible import pin_mkl

pin_mkl()
