"""The report's page "What this data can and cannot test": each configuration of the embedded data the
tables used (a figure of it from its "preview" analysis, the tables, their training length and the widths
into their heads), then what the scenes carry and what they cannot show. The scene modes' facts are those
of data/synthetic.py (its module docstring); the report imports no data code, so they are restated here."""
import json
import os
import textwrap

from engine.analysis import data_analysis_file, load_analysis
from report.common import md_table, plt, save_figure

# per scene mode: (what decides a pixel's class, object radius as fractions of the image, what it is for)
MODES = {
    "plain": ("the object's global shape: every class has the same textures, so no local patch tells a circle "
              "from a square", (0.22, 0.40), "large kernels, field of view, boundaries, the CRF"),
    "context": ("the shape *and* a red or blue band along the top edge, ≥ 48 px above every object (look-alike "
                "classes of two kinds of scene)", (0.16, 0.28), "pyramid vs global pooling, the auxiliary loss, depth"),
    "hard": ("a thin ring 12–18 px beyond the object's edge tells a ringed object from its plain look-alike; ≈ 90 % "
             "of the pixels are smooth, easy background", (0.12, 0.18), "the cascade's threshold ρ"),
}
ANCHOR = "data"  # the page's anchor, set before its heading

# what each table's data can test is measured per assertion by its mechanism probe (issue 37); what remains
# here is what no setting of this data can test
CAN_AND_CANNOT = """**Can test**: what each assertion's mechanism probe finds in its table's data (the opening table's \
*mechanism here*, each section's *Mechanisms*). **Never**: absolute numbers, or a gap's size beside the paper's (5 or \
9 classes at 128 px, not 21 or 150); the papers' backbones (small CPU CNNs pretrained on fractal images, not ImageNet \
ResNets or VGG); speed in milliseconds (one CPU thread: speed-ups only)."""


def scene_mode(data_cfg):
    return "context" if data_cfg.get("context") else "hard" if data_cfg.get("hard") else "plain"


def config_name(data_cfg):
    """'context scenes, no mirror': the mode and any other switch off its default."""
    extra = ", no mirror" if data_cfg.get("flip") is False else ""
    return f"{scene_mode(data_cfg)} scenes{extra}"


def table_training(rows):
    """'800 × 8 (3.2 epochs)' and the trunk's channels into the head → the head's width, of a table's rows."""
    first = rows.iloc[0]
    data, model = json.loads(first["data_config"]), json.loads(first["model_config"])
    epochs = int(first["iterations"]) * int(first["batch_size"]) / int(data["n_train"])
    widths = model.get("backbone", {}).get("widths") or []
    head = model.get("head_width") or model.get("fc_channels")
    into = f"{widths[-1]} ch" if widths else "?"
    return (f"{int(first['iterations'])} × {int(first['batch_size'])} ({epochs:.1f} epochs)",
            into + (f" → {head}" if head else ""))


def preview_figure(results_dir, data_cfg, path, title):
    """Draw the "preview" analysis of a data config (images over labels); False when it is not saved."""
    analysis = data_analysis_file(results_dir, data_cfg, "preview")
    if not os.path.exists(analysis):
        return False
    preview = load_analysis(analysis)
    n = min(len(preview["image"]), 6)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(preview["image"][i])
        axes[1, i].imshow(preview["label"][i], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
        axes[0, i].axis("off")
        axes[1, i].axis("off")
    classes = ", ".join(f"{c} = {name}" for c, name in enumerate(preview["class_names"]))
    fig.suptitle(f"{title}: validation images (top) and their labels (bottom)\n"
                 + textwrap.fill(f"classes: {classes}", 120), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, 90)
    return True


def data_page(results, specs, one_plan, results_dir, fig_dir, rel_fig):
    """Markdown of the page; results {ablation: rows}; one_plan picks the rows a table uses."""
    configs = {}  # data config (json) -> [(spec, rows)], in the suite's order
    for spec in specs:
        if spec.name not in results:
            continue
        rows = one_plan(results[spec.name])[0]
        if str(rows.iloc[0]["dataset"]) != "synthetic":
            continue
        for data_config, group in rows.groupby("data_config", sort=False):
            configs.setdefault(data_config, []).append((spec, group))
    if not configs:
        return ""
    body, figures = [], []
    for data_config, tables in configs.items():
        data = json.loads(data_config)
        mode = scene_mode(data)
        cue, (low, high), use = MODES[mode]
        use = "the chain's first step: no augmentation" if data.get("flip") is False else use
        trained = {}  # training text -> the tables trained so
        for spec, group in tables:
            trained.setdefault(", ".join(table_training(group)), []).append(f"`{spec.name}`")
        body.append([f"**{config_name(data)}** ({use})", cue, f"{low:g}–{high:g} of the image ({high / low:.1f}×)",
                     "; ".join(f"{', '.join(names)}: {text}" for text, names in trained.items())])
        name = f"data_{mode}" + ("_no_mirror" if data.get("flip") is False else "") + ".png"
        if preview_figure(results_dir, data, os.path.join(fig_dir, name), config_name(data)):
            figures.append(f"![{config_name(data)}]({rel_fig}/{name})")
        else:
            figures.append(f"The figure of the {config_name(data)} is not drawn: its \"preview\" analysis is not in "
                           f"`{results_dir}/analysis/` (a rerun of the ablation computes it without training).")
    first = json.loads(next(iter(configs)))
    intro = (f"Every table here runs on the embedded generated scenes (data/synthetic.py; {first['image_size']} px, "
             f"{first['n_train']:,} training and {first['n_val']} validation images), not on the papers' data: compare "
             "directions and verdicts, never absolute numbers (Δ = reproduced − published). Each configuration of the "
             "data a table used, with a figure of it:")
    table = md_table(["scenes (tables: what for)", "what decides a pixel's class (the cue)", "object radius (scale range)",
                      "training: iterations × batch (epochs), channels into the head → head width"], body)
    return "\n\n".join([f'<a id="{ANCHOR}"></a>', "## What this data can and cannot test", intro, table, *figures, CAN_AND_CANNOT])
