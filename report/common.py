"""What the report's modules share: matplotlib set up for files (Agg), byte-reproducible figures,
grids of images and label maps, number formatting, markdown tables, and per-seed values of a metric."""
import math

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from engine.design import seed_values  # noqa: E402


# The report's extra sections an ablation may ask for in REPORT_SECTIONS, each registered where it is drawn:
# name → (its function, the names of its arguments that hold variant ids, checked like a claim's).
SECTIONS = {}


def report_section(name, *variant_args):
    """Decorator: fn(spec, rows, results_dir, fig_dir, rel_fig, **arguments) draws report section `name`."""
    def register(fn):
        SECTIONS[name] = (fn, variant_args)
        return fn
    return register


def save_figure(fig, path, dpi):
    """Save and close a figure, byte-reproducibly: no 'Software' (matplotlib version) entry in the PNG."""
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    plt.close(fig)


# how a metric column is named in tables and on axes
METRIC_NAMES = {"mIoU": "mIoU %", "pixel_acc": "pixel acc %", "mean_acc": "mean class acc %",
                "boundary_acc": "boundary acc %", "internal_acc": "internal acc %",
                "head_params": "head #params", "params": "#params", "train_img_per_s": "train img/s",
                "infer_fps": "inference img/s", "context_acc": "context acc %", "shape_acc": "shape acc %"}


LABEL_COLOURS = {"cmap": "tab10", "vmin": 0, "vmax": 9}  # imshow options of a label map: a colour per class


def shown_label(label):
    """A label map for imshow: ignored pixels (255) left blank."""
    shown = label.astype(float)
    shown[shown == 255] = np.nan
    return shown


def image_grid(panels, path, suptitle, **suptitle_options):
    """Save a figure of rows of images, one column per image: panels [(row title, [image per column],
    imshow options)]; the row titles on the first column."""
    n = len(panels[0][1])
    fig, axes = plt.subplots(len(panels), n, figsize=(2 * n, 2.05 * len(panels)), squeeze=False)
    for r, (title, images, options) in enumerate(panels):
        for i, image in enumerate(images):
            axes[r, i].imshow(image, interpolation="nearest", **options)
            axes[r, i].axis("off")
        axes[r, 0].set_title(title, fontsize=9, loc="left")
    fig.suptitle(suptitle, **suptitle_options)
    fig.tight_layout()
    save_figure(fig, path, 90)


def mean_text(values):
    """'mean ± std (n)' of per-seed values, or 'not run'."""
    mean, std, n = mean_std(values)
    return f"{fmt(mean)} ± {fmt(std)} ({n})" if n else "not run"


def fmt(value, digits=2):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 100):
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def per_seed(rows, metric, minus=None):
    """{variant: [value per seed]} over the finished runs: engine.design.seed_values without the seeds
    (and without its failed runs, which the claims count and the tables of means leave out)."""
    return {v: [x for x in by_seed.values() if math.isfinite(x)] for v, by_seed in seed_values(rows, metric, minus).items()
            if any(math.isfinite(x) for x in by_seed.values())}


def mean_std(values):
    if not values:
        return math.nan, math.nan, 0
    s = pd.Series(values, dtype=float)
    return s.mean(), (s.std() if len(s) > 1 else math.nan), len(s)


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
