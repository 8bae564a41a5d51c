"""The figure of each table: published beside reproduced (their scales differ: two panels), with the
verdict of each claim under the reproduced one.

Two kinds of axis, chosen from the ablation file alone:
- a sweep: every variant has a numeric "x" and some neighbours of a series are one sweep step apart
  (`one_step_apart`): drawn against x, a line only between such neighbours (GCN's k, ρ, α);
- categories otherwise (pooling types, chain steps, DeepLab's variants, depths whose CPU trunks are
  not ResNets): one row per category, points with error bars and no lines, labels written out.
A label "name (CPU: trunk)" shows the name on the published panel and the trunk on the reproduced one
(the reproduced models are the CPU trunks, not the paper's ResNets).
"""
import math
import re
from dataclasses import replace

from report.common import METRIC_NAMES, mean_std, per_seed, plt, save_figure

CPU_NAME = re.compile(r"\s*\(CPU: ([^)]*)\)")
SETTING_KEYS = ("model", "data", "train", "eval", "presets", "preset_overrides", "tune_lr", "tune_crf")


def flat(value, prefix=""):
    """{'model.k': 7, ...}: nested settings as dotted keys."""
    if not isinstance(value, dict):
        return {prefix: value}
    out = {}
    for k, v in value.items():
        out.update(flat(v, f"{prefix}.{k}" if prefix else k))
    return out


def one_step_apart(a, b):
    """Whether two variants differ only by the swept quantity: every setting that tells them apart
    holds each one's own x (k = x, α = x, the evaluation's ρ = x of one trained cascade). A model trained
    otherwise (ρ = 0.8's own model, DSN, the 1×1 baseline) or evaluated otherwise (+ MS) is not."""
    sa, sb = (flat({k: v.get(k) for k in SETTING_KEYS}) for v in (a, b))
    differ = [k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k)]
    return all(sa.get(k) == a["x"] and sb.get(k) == b["x"] for k in differ)


def is_sweep(variants):
    if not all(isinstance(v.get("x"), (int, float)) for v in variants):
        return False
    return any(one_step_apart(a, b) for members in series_of(variants).values()
               for a, b in zip(members, members[1:]))


def series_of(variants):
    """{series name: its variants sorted by x}, in the file's order of first appearance."""
    found = {}
    for v in variants:
        found.setdefault(v.get("series"), []).append(v)
    return {name: sorted(members, key=lambda v: v.get("x", 0)) for name, members in found.items()}


def shared_words(labels):
    """The words all labels begin with and end with: 'DeepLab-MSc' of 'DeepLab-MSc' and 'DeepLab-MSc + CRF'."""
    words = [label.split() for label in labels]
    shortest = min(len(w) for w in words)
    head = next((i for i in range(shortest) if len({w[i] for w in words}) > 1), shortest)
    tail = next((i for i in range(shortest - head) if len({w[-1 - i] for w in words}) > 1), shortest - head)
    return " ".join(words[0][:head] + (words[0][len(words[0]) - tail:] if tail else []))


def categories(variants):
    """[(published label, reproduced label, [variants])]: the variants of one x (one per series), or
    each variant alone where there is no x."""
    groups = {}
    for i, v in enumerate(variants):
        groups.setdefault(v.get("x", f"#{i}"), []).append(v)
    out = []
    for members in groups.values():
        label = shared_words([v["label"] for v in members]) or members[0]["label"]
        cpu = CPU_NAME.search(label)
        out.append((CPU_NAME.sub("", label), cpu.group(1) if cpu else label, members))
    return out


def verdict_lines(judged, width=95):
    """'reproduced — claim text' per judged claim of the table (checks and repeats say so)."""
    lines = []
    for j in judged:
        outcome = "check" if j.verdict.claim.is_check else j.verdict.outcome
        text = j.verdict.claim.text
        text = text if len(text) <= width else text[:width - 1] + "…"
        lines.append(f"{outcome}{'' if j.counted or j.verdict.claim.is_check else ' (counted elsewhere)'} — {text}")
    return lines


def draw_sweep(axes, spec, values, metric):
    for i, (name, members) in enumerate(series_of(spec.variants).items()):
        color = f"C{i}"
        pub = [(v["x"], spec.published.get(v["id"], {}).get(metric)) for v in members]
        pub = [(x, p) for x, p in pub if p is not None]
        stats = [(v, *mean_std(values.get(v["id"], []))) for v in members]
        for ax, points in ((axes[0], [(x, p, math.nan) for x, p in pub]),
                           (axes[1], [(v["x"], m, s) for v, m, s, n in stats if n])):
            if points:
                ax.errorbar([p[0] for p in points], [p[1] for p in points],
                            yerr=[0 if math.isnan(p[2]) else p[2] for p in points], fmt="o", color=color,
                            capsize=3, label=name)
        for v in members:
            vals = values.get(v["id"], [])
            axes[1].scatter([v["x"]] * len(vals), vals, color=color, alpha=0.4, s=12)
        joined = [one_step_apart(a, b) for a, b in zip(members, members[1:])]
        for i, v in enumerate(members):  # a model of its own in the sweep: named where it stands
            if len(members) > 1 and not any(joined[max(i - 1, 0):i + 1]) and v["id"] in values:
                last = i == len(members) - 1  # the rightmost: its name to the left, inside the panel
                axes[1].annotate(v["label"], (v["x"], mean_std(values[v["id"]])[0]), fontsize=7, color=color,
                                 textcoords="offset points", xytext=(-6 if last else 6, 6),
                                 ha="right" if last else "left")
        for a, b in zip(members, members[1:]):
            if one_step_apart(a, b):  # the same quantity swept: joined; another model is not
                for ax, ya, yb in ((axes[0], spec.published.get(a["id"], {}).get(metric),
                                    spec.published.get(b["id"], {}).get(metric)),
                                   (axes[1], mean_std(values.get(a["id"], []))[0],
                                    mean_std(values.get(b["id"], []))[0])):
                    if ya is not None and yb is not None:
                        ax.plot([a["x"], b["x"]], [ya, yb], "-", color=color, alpha=0.7)
    for ax in axes:
        ax.set_xlabel(spec.x_label, fontsize=9)
        ax.grid(alpha=0.3)
    if len(series_of(spec.variants)) > 1:
        axes[1].legend(fontsize=7)


def draw_categories(axes, spec, values, metric):
    """Categories top to bottom (the file's order) on the y axis, the metric along x; series side by side."""
    groups = categories(spec.variants)
    names = list(series_of(spec.variants))
    step = 0.6 / max(len(names), 1)
    for c, (_, _, members) in enumerate(groups):
        for v in members:
            s = names.index(v.get("series"))
            y = c + (s - (len(names) - 1) / 2) * step
            color, label = f"C{s}", (v.get("series") if c == 0 or len(members) == 1 else None)
            pub = spec.published.get(v["id"], {}).get(metric)
            if pub is not None:
                axes[0].plot([pub], [y], "o", color=color)
            vals = values.get(v["id"], [])
            mean, std, n = mean_std(vals)
            axes[1].scatter(vals, [y] * len(vals), color=color, alpha=0.4, s=12)
            if n:
                axes[1].errorbar([mean], [y], xerr=[0 if math.isnan(std) else std], fmt="o", color=color,
                                 capsize=3, label=label)
    positions = list(range(len(groups)))
    axes[0].set_yticks(positions, [g[0] for g in groups], fontsize=8)
    own = [g[1] for g in groups]
    if own != [g[0] for g in groups]:  # the CPU trunks' own names, on the right
        axes[1].set_yticks(positions, own, fontsize=8)
        axes[1].yaxis.tick_right()
    else:
        axes[1].set_yticks(positions, [""] * len(groups))
    for ax in axes:
        ax.set_ylim(len(groups) - 0.5, -0.5)  # the first category on top
        ax.grid(alpha=0.3, axis="x")
    if len(names) > 1:
        handles, labels = axes[1].get_legend_handles_labels()
        by_label = dict(zip(labels, handles))
        axes[1].legend(by_label.values(), by_label.keys(), fontsize=7)


def plot(spec, rows, path, judged=()):
    """The table's figure (module docstring); `judged`: its claims' verdicts (report.overview.Judged)."""
    metric = spec.metrics[0]
    values = per_seed(rows, metric)
    shown = [v for v in spec.variants if v["id"] in values or spec.published.get(v["id"], {}).get(metric) is not None]
    spec = replace(spec, variants=tuple(shown))  # a variant neither published nor run (at this preset): left out
    sweep = is_sweep(spec.variants)
    lines = verdict_lines(judged)
    groups = [] if sweep else categories(spec.variants)
    # inches: panels, the verdict lines under them, and room for the category labels (8 pt ≈ 0.067 in a character)
    panels = 2.8 if sweep else max(1.6, 0.3 * len(groups))
    below, above = 0.55 + 0.15 * (len(lines) + 1 if lines else 0), 0.65
    left = 0.7 if sweep else 0.25 + 0.067 * max((len(g[0]) for g in groups), default=0)
    right = 0.2 if sweep or all(g[0] == g[1] for g in groups) else 0.25 + 0.067 * max(len(g[1]) for g in groups)
    width, height = 10.0, panels + below + above
    fig, axes = plt.subplots(1, 2, figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=below / height, top=1 - above / height,
                        wspace=0.22 if sweep else 0.08)
    (draw_sweep if sweep else draw_categories)(axes, spec, values, metric)
    unit = METRIC_NAMES.get(metric, metric)
    axes[0].set_title("published", fontsize=10)
    axes[1].set_title("reproduced (mean ± std; dots = seeds)", fontsize=10)
    for ax in axes:
        (ax.set_ylabel if sweep else ax.set_xlabel)(unit, fontsize=9)
    fig.suptitle(spec.title, fontsize=11)
    if lines:
        fig.text(0.01, (below - 0.5) / height, "verdicts:\n" + "\n".join(lines), fontsize=8, va="top",
                 family="monospace")
    save_figure(fig, path, 100)
