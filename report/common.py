"""What the report's modules share: matplotlib set up for files (Agg), byte-reproducible figures,
number formatting, markdown tables, and per-seed values of a metric."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ablations.verdicts import seed_values  # noqa: E402


def save_figure(fig, path, dpi):
    """Save and close a figure, byte-reproducibly: no 'Software' (matplotlib version) entry in the PNG."""
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    plt.close(fig)


def fmt(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 100):
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def per_seed(rows, metric, minus=None):
    """{variant: [value per seed]} over the finished runs: verdicts.seed_values without the seeds."""
    return {v: list(by_seed.values()) for v, by_seed in seed_values(rows, metric, minus).items()}


def mean_std(values):
    if not values:
        return math.nan, math.nan, 0
    s = pd.Series(values, dtype=float)
    return s.mean(), (s.std() if len(s) > 1 else math.nan), len(s)


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
