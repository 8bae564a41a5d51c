"""The report's page "What this data can and cannot test": each configuration of the embedded data the
tables used (a figure of it from its "preview" analysis, the tables, their training length and the widths
into their heads), then what the scenes carry and what they cannot show. The scene modes' facts are those
of data/synthetic.py (its module docstring); the report imports no data code but the knobs' defaults
(data/scene_knobs.py) are restated too (a test checks them against it)."""
import hashlib
import json
import os
import textwrap

from engine.analysis import data_analysis_file, load_analysis
from report.common import image_grid, md_table

# per scene mode: (what decides a pixel's class, object radius as fractions of the image, what it is for)
MODES = {
    "plain": ("the object's global shape: every class has the same textures, so no local patch tells a circle "
              "from a square", (0.22, 0.40), "large kernels, field of view, boundaries, the CRF"),
    "context": ("the shape *and* a red or blue band along the top edge, ≥ 48 px above every object (look-alike "
                "classes of two kinds of scene)", (0.16, 0.28), "pyramid vs global pooling, the auxiliary loss, depth"),
    "hard": ("a thin ring 12–18 px beyond the object's edge tells a ringed object from its plain look-alike; ≈ 90 % "
             "of the pixels are smooth, easy background", (0.12, 0.18), "the cascade's threshold ρ"),
}
# data/scene_knobs.py's knobs and their defaults (a knob at its default is not named)
KNOB_DEFAULTS = {"classes": 4, "asymmetric": False, "log_radius": False, "context_grid": 1, "contexts": 2,
                 "ringed_share": 0.5, "edge_blur": 0.0, "contrast": 1.0}
ANCHOR = "data"  # the page's anchor, set before its heading

# what each table's data can test is measured per assertion by its mechanism probe (issue 37); what remains
# here is what no setting of this data can test
def can_and_cannot(class_counts):
    """The page's closing paragraph; class_counts: the classes of the configurations drawn."""
    counts = " or ".join(str(c) for c in sorted(set(class_counts))) if class_counts else "a few"
    return ("**Can test**: what each assertion's mechanism probe finds in its table's data (the opening table's "
            f"*mechanism here*, each section's *Mechanisms*). **Never**: absolute numbers, or a gap's size beside the "
            f"paper's ({counts} classes at 128 px, not 21 or 150); the papers' backbones (small CPU CNNs pretrained on "
            "fractal images, not ImageNet ResNets or VGG); speed in milliseconds (one CPU thread: speed-ups only).")


def object_radius(data_cfg):
    """(low, high) object radius of a data config, fractions of the image: its own or its mode's."""
    return tuple(data_cfg.get("radius") or MODES[scene_mode(data_cfg)][1])


def changed_knobs(data_cfg):
    """{knob: value} of a data config's scene knobs away from their defaults, and random resize."""
    knobs = {k: data_cfg[k] for k, default in KNOB_DEFAULTS.items() if k in data_cfg and data_cfg[k] != default}
    return {**knobs, **({"resize": data_cfg["resize"]} if data_cfg.get("resize") else {})}


def scene_mode(data_cfg):
    return "context" if data_cfg.get("context") else "hard" if data_cfg.get("hard") else "plain"


def config_name(data_cfg):
    """'context scenes, no mirror, context_grid 2': the mode and any other switch or knob off its default."""
    extra = ", no mirror" if data_cfg.get("flip") is False else ""
    extra += "".join(f", {k} {json.dumps(v)}" for k, v in changed_knobs(data_cfg).items())
    return f"{scene_mode(data_cfg)} scenes{extra}"


def figure_name(data_cfg):
    """The file of a configuration's figure: the mode (and no mirror), and a digest of its knobs when any
    is off its default (two configurations of one mode never share a file)."""
    knobs = changed_knobs(data_cfg)
    digest = "_" + hashlib.sha1(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:8] if knobs else ""
    return f"data_{scene_mode(data_cfg)}" + ("_no_mirror" if data_cfg.get("flip") is False else "") + digest + ".png"


def table_epochs(rows):
    """Epochs of a table's training set its runs see (iterations × batch / training images)."""
    first = rows.iloc[0]
    return int(first["iterations"]) * int(first["batch_size"]) / int(json.loads(first["data_config"])["n_train"])


def table_training(rows):
    """'800 × 8 (3.2 epochs)' and the trunk's channels into the head → the head's width, of a table's rows."""
    first = rows.iloc[0]
    model = json.loads(first["model_config"])
    epochs = table_epochs(rows)
    widths = model.get("backbone", {}).get("widths") or []
    head = model.get("head_width") or model.get("fc_channels")
    into = f"{widths[-1]} ch" if widths else "?"
    return (f"{int(first['iterations'])} × {int(first['batch_size'])} ({epochs:.1f} epochs)",
            into + (f" → {head}" if head else ""))


def preview_figure(results_dir, data_cfg, path, title):
    """Draw the "preview" analysis of a data config (images over labels); its number of classes, or None
    when it is not saved."""
    analysis = data_analysis_file(results_dir, data_cfg, "preview")
    if not os.path.exists(analysis):
        return None
    preview = load_analysis(analysis)
    n = min(len(preview["image"]), 6)
    classes = ", ".join(f"{c} = {name}" for c, name in enumerate(preview["class_names"]))
    many = len(preview["class_names"]) > 10  # tab10 repeats its colours past 10 classes
    labels = {"cmap": "nipy_spectral" if many else "tab10", "vmin": 0, "vmax": len(preview["class_names"]) - 1 if many else 9}
    image_grid([("validation images", list(preview["image"][:n]), {}), ("labels", list(preview["label"][:n]), labels)],
               path, f"{title}\n" + textwrap.fill(f"classes: {classes}", 120), fontsize=9)
    return len(preview["class_names"])


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
    body, figures, classes = [], [], []
    for data_config, tables in configs.items():
        data = json.loads(data_config)
        mode = scene_mode(data)
        cue, _, use = MODES[mode]
        if mode == "context" and data.get("context_grid", 1) > 1:
            cue = (f"the shape *and* its sub-region's band (a {data['context_grid']}×{data['context_grid']} grid; "
                   f"{data.get('contexts', 2)} kinds of scene), along the sub-region's top")
        low, high = object_radius(data)
        use = "the chain's first step: no augmentation" if data.get("flip") is False else use
        trained = {}  # training text -> the tables trained so
        for spec, group in tables:
            trained.setdefault(", ".join(table_training(group)), []).append(f"`{spec.name}`")
        body.append([f"**{config_name(data)}** ({use})", cue, f"{low:g}–{high:g} of the image ({high / low:.1f}×)",
                     "; ".join(f"{', '.join(names)}: {text}" for text, names in trained.items())])
        name = figure_name(data)
        classes.append(preview_figure(results_dir, data, os.path.join(fig_dir, name), config_name(data)))
        if classes[-1]:
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
    return "\n\n".join([f'<a id="{ANCHOR}"></a>', "## What this data can and cannot test", intro, table, *figures,
                       can_and_cannot([c for c in classes if c])])
