# Makes the repository root importable for the tests (pytest puts this file's folder on sys.path).
import engine  # noqa: F401  (first: pins MKL's code path before any test computes a tensor)
