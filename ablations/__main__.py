"""python -m ablations NAME [options]: one ablation on its own (the options are run_all.py's)."""
import sys

import run_all

if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
    sys.exit(f"usage: python -m ablations NAME [run_all.py options]; NAME one of: {', '.join(run_all.ABLATIONS)}")
sys.exit(run_all.command(["--ablation", sys.argv[1]] + sys.argv[2:]))
