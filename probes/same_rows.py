"""Do two results folders hold the same runs with the same numbers? Compares every row of every
results/*.csv and tuning/*.csv (matched by variant, seed, run id and eval id) in every column but the
timings, times and provenance; prints the rows that differ and a count. Exit code 1 if any differ.

    python -m probes.same_rows results_a results_b

(How a reshaping was shown to move no number: a smoke run of every ablation before and after it.)
"""
import glob
import os
import sys

import pandas as pd

# columns that differ between two runs of the same computation: speed, wall time, load, when, where
NOT_COMPARED = {"train_img_per_s", "wall_s", "eval_wall_s", "infer_fps", "infer_ms", "infer_fps_median", "crf_ms",
                "stage1_ms", "stage2_ms", "stage3_ms", "load_avg_1m", "timing_load_avg_1m", "git_sha", "finished_at",
                "call_started_at", "host", "cpu_model", "cpu_count", "train_s", "reference_step_ms"}
KEY = ["variant", "seed", "run_id", "eval_id"]


def compare(a_dir, b_dir):
    """(rows compared, [(file, variant, seed, [(column, a, b)])] of the rows that differ)."""
    total, differ = 0, []
    files = sorted(glob.glob(os.path.join(a_dir, "*.csv")) + glob.glob(os.path.join(a_dir, "tuning", "*.csv")))
    for path in files:
        rel = os.path.relpath(path, a_dir)
        other = os.path.join(b_dir, rel)
        if not os.path.exists(other):
            differ.append((rel, "-", "-", [("file", "present", "missing")]))
            continue
        a, b = (pd.read_csv(p, dtype=str, keep_default_na=False).sort_values(KEY).reset_index(drop=True)
                for p in (path, other))
        if len(a) != len(b) or a[KEY].values.tolist() != b[KEY].values.tolist():
            differ.append((rel, "-", "-", [("rows", len(a), len(b))]))
            continue
        columns = [c for c in a.columns if c not in NOT_COMPARED]
        missing = [c for c in columns if c not in b]
        for i in a.index:
            cells = [(c, a.at[i, c], b.at[i, c] if c in b else "(no column)") for c in columns
                     if c in missing or a.at[i, c] != b.at[i, c]]
            if cells:
                differ.append((rel, a.at[i, "variant"], a.at[i, "seed"], cells))
        total += len(a)
    return total, differ


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m probes.same_rows RESULTS_A RESULTS_B", file=sys.stderr)
        return 2
    total, differ = compare(*argv)
    for rel, variant, seed, cells in differ:
        print(f"{rel} {variant} seed {seed}: " + "; ".join(f"{c} {x!r} vs {y!r}" for c, x, y in cells[:4]))
    print(f"{total} rows compared, {len(differ)} differ (every column but timings, times and provenance)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
