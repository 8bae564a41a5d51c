"""Build report/REPORT.md (+ figures/) from the results CSVs and the ablation files.

For each ablation with results: the published table beside the reproduced one (mean ± std over
seeds), the difference, a plot, a verdict per claim, exact facts, the paper-specific sections the
ablation names in REPORT_SECTIONS, the settings used and the known deviations from the paper.
Run: python -m report.build [--results DIR] [--report-dir DIR]

The report reads only the CSV rows, the analysis data saved beside them
(results/analysis/*.npz) and the ablation files: never the run folders (not committed); it never
re-plans runs, rebuilds a dataset or builds a trained network. REPORT.md is a pure function of
these, and the figures are saved without version metadata, so rebuilding from the same data gives
the same bytes.
"""
import argparse
import json
import math
import os

import pandas as pd

from benchmarks.train_step import REFERENCE, REFERENCE_MS
from engine.analysis import data_analysis_file, load_analysis
from engine.claims import DECIDED, fact_holds
from engine.design import rows_looks
from engine.rows import OK, ResultsError, read_rows, write_text
from engine.spec import SECTIONS
from engine.stats import ALPHA
from engine.tuning import choose_lrs, lr_point_id, selection_csv
from report import deeplab, erf, lc_sections, psp, standins
from report.common import fmt, md_table, mean_std, per_seed, plt, save_figure
from report.overview import (decided_share, difference_text, family_line, judged_claims, overview_table,
                             pair_correlations, pairing_text)

METRIC_NAMES = {"mIoU": "mIoU %", "pixel_acc": "pixel acc %", "mean_acc": "mean class acc %",
                "boundary_acc": "boundary acc %", "internal_acc": "internal acc %",
                "head_params": "head #params", "params": "#params", "train_img_per_s": "train img/s",
                "infer_fps": "inference img/s", "context_acc": "context acc %", "shape_acc": "shape acc %"}


CONFIG_PARTS = {"data_config": "data", "model_config": "model", "train_config": "train", "eval_config": "eval"}


def flat_config(row):
    """{'train.iterations': 800, ...}: a row's whole configuration as dotted keys."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            out[prefix] = value
    for column, part in CONFIG_PARTS.items():
        walk(part, json.loads(row[column]))
    return out


def config_difference(row, used):
    """'train.iterations 4 (used: 800)' for each setting where `row` differs from `used`."""
    a, b = flat_config(row), flat_config(used)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "; ".join(f"{k} {a.get(k, '–')} (used: {b.get(k, '–')})" for k in keys) or "the same settings"


def one_plan(rows):
    """The rows a table uses, and a line per plan left out. Rule: the plan of the row written last
    (the latest run of the ablation); rows of any other plan (other iterations, seeds' settings,
    preset, eval settings, an edited ablation file) are never pooled with it."""
    plan = rows["plan_id"].iloc[-1]
    used = rows[rows["plan_id"] == plan]
    notes = []
    for _, other in rows[rows["plan_id"] != plan].groupby("plan_id", sort=False):
        first = other.iloc[0]
        twin = used[used["variant"] == first["variant"]]
        what = (config_difference(first, twin.iloc[0]) if len(twin)
                else f"variant(s) {', '.join(sorted(set(other['variant'])))} not in the plan used")
        notes.append(f"{len(other)} row(s) of other settings not used: {what}")
    return used, notes


def results_table(spec, rows):
    """Published vs reproduced, one row per variant."""
    header = ["variant"]
    for m in spec.metrics:
        header += [f"published {METRIC_NAMES.get(m, m)}", f"reproduced {METRIC_NAMES.get(m, m)} (mean ± std, n)", "Δ"]
    extra = [c for c in spec.report_columns if c in rows]
    header += [METRIC_NAMES.get(c, c) for c in extra]
    body = []
    for v in spec.variants:
        line = [v["label"]]
        failed = int(((rows["variant"] == v["id"]) & (rows["status"] != OK)).sum())
        for m in spec.metrics:
            pub = spec.published.get(v["id"], {}).get(m)
            mean, std, n = mean_std(per_seed(rows, m).get(v["id"], []))
            missing = f"failed ({failed} run(s))" if failed else "not run"
            line += [fmt(pub), f"{fmt(mean)} ± {fmt(std)} ({n})" + (f"; {failed} failed" if failed else "")
                     if n else missing,
                     fmt(mean - pub) if pub is not None and n else "–"]
        for c in extra:
            mean, _, n = mean_std(per_seed(rows, c).get(v["id"], []))
            line.append(fmt(mean, 1) if n else "–")
        body.append(line)
    return md_table(header, body)


def plot(spec, rows, path):
    """Published and reproduced series side by side (their scales differ: two panels). Variants
    with a "series" key are drawn as one line per series (e.g. GCN vs trivial conv over k)."""
    metric = spec.metrics[0]
    values = per_seed(rows, metric)
    has_x = all("x" in v for v in spec.variants)
    xs = [v["x"] if has_x else i for i, v in enumerate(spec.variants)]
    series = {}  # series name -> [(x, variant)], in the spec's order
    for x, v in zip(xs, spec.variants):
        series.setdefault(v.get("series"), []).append((x, v))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (name, members) in enumerate(series.items()):
        sx, color = [x for x, _ in members], f"C{i}"
        pub = [spec.published.get(v["id"], {}).get(metric, math.nan) for _, v in members]
        if not all(math.isnan(p) for p in pub):
            axes[0].plot(sx, pub, "o-", color=color, label=name)
        for x, v in members:
            vals = values.get(v["id"], [])
            axes[1].scatter([x] * len(vals), vals, color=color, alpha=0.5, s=14)
        stats = [mean_std(values.get(v["id"], [])) for _, v in members]
        axes[1].errorbar(sx, [s[0] for s in stats], yerr=[0 if math.isnan(s[1]) else s[1] for s in stats],
                         fmt="o-", color=color, capsize=3, label=name)
    axes[0].set_title("published")
    axes[1].set_title("reproduced (mean ± std; dots = seeds)")
    if len(series) > 1:
        axes[1].legend(fontsize=7)
    for ax in axes:
        ax.set_ylabel(METRIC_NAMES.get(metric, metric))
        ax.set_xlabel(spec.x_label)
        if not has_x:
            ax.set_xticks(xs, [v["id"] for v in spec.variants], rotation=30)
        ax.grid(alpha=0.3)
    fig.suptitle(spec.title)
    fig.tight_layout()
    save_figure(fig, path, 110)


def failed_runs(rows, claim):
    """'variant ×n' for the claim's variants with failed runs (counted against them: ranked last)."""
    failed = rows[rows["status"] != OK]["variant"].value_counts()
    return [f"{v} ×{failed[v]}" for v in claim.variants() if v in failed]


def why_undecided(spec, rows, verdict):
    """Why an inconclusive claim stayed so, from its runs and the design: a variant that never
    trained, a difference out of the design's reach, or a run budget spent on nearer claims."""
    trained = set(rows[rows["status"] == OK]["variant"])
    never = [v for v in verdict.claim.variants() if v not in trained]
    n, need = verdict.seeds, verdict.need
    if never:
        return f"every run of {', '.join(never)} failed, so there is nothing to compare"
    most = rows_looks(rows)[-1]
    if need == math.inf:
        return "no difference in reach: against the seed spread the observed one is as good as none"
    if need > most:
        return (f"the observed difference is small against the seed spread: about {need} seeds per variant, "
                f"more than the design's {most}")
    if n < most:
        budget = spec.max_runs.get(rows["preset"].iloc[0])
        return (f"about {need} seeds per variant would do, within the design's {most}, but the run budget "
                f"({budget} runs) was spent before its next look" if budget else
                f"about {need} seeds per variant would do, but the later looks were not run")
    return f"at the design's {most} seeds; the estimate of about {need} is itself uncertain at so few seeds"


def claims_table(spec, rows, judged):
    """A row per claim: its verdict, the look that decided it, the difference with its 95 % CI, and the
    statistic; a check (true by construction) and a comparison judged in another ablation say so."""
    body = []
    for j in judged:
        verdict = j.verdict
        statistic, failed = verdict.statistic, failed_runs(rows, verdict.claim)
        if failed:
            statistic += f"; failed runs (counted, ranked last): {', '.join(failed)}"
        if not verdict.decided and j.counted:
            statistic += f". **Why undecided:** {why_undecided(spec, rows, verdict)}"
        outcome = f"**{verdict.outcome}**"
        if verdict.claim.is_check:
            outcome = f"check: {'holds' if verdict.outcome == 'reproduced' else verdict.outcome} (by construction: " \
                      f"{verdict.claim.by_construction}; not counted as evidence)"
        elif j.same_as:
            outcome += f" (the same runs and test as `{j.same_as[0]}`'s “{j.same_as[1]}”: counted there)"
        body.append([verdict.claim.text, outcome, f"{verdict.look} of {verdict.looks} (seeds < {verdict.seeds})",
                     difference_text(verdict), statistic])
    return md_table(["claim (paper)", "verdict", "look", "difference [95 % CI]", "statistic"], body)


def verdict_summary(results, specs, judged):
    """Distinct verdicts per ablation, the share decided, the family-wise picture and the pairing."""
    kinds = list(DECIDED) + ["inconclusive"]
    body, total = [], dict.fromkeys(kinds, 0)
    for spec in specs:
        if spec.name not in results:
            continue
        rows, _ = one_plan(results[spec.name])
        claims = judged[spec.name]
        verdicts = [j.verdict.outcome for j in claims if j.counted]
        counts = {k: verdicts.count(k) for k in kinds}
        total = {k: total[k] + counts[k] for k in kinds}
        looks = ", ".join(map(str, rows_looks(rows)))
        budget = spec.max_runs.get(rows["preset"].iloc[0])
        looks += f"; at most {budget} runs" if budget else ""
        rs = pair_correlations(spec, rows)
        pairing = pairing_text(rows) + (f"; pair r median {sorted(rs)[len(rs) // 2]:+.2f} over {len(rs)} claims"
                                        if rs else "")
        other = sum(not j.counted for j in claims)
        body.append([f"`{spec.name}`", *counts.values(), f"{sum(counts[k] for k in DECIDED)}/{len(verdicts)}"
                     + (f" (+{other} not counted)" if other else ""), family_line(claims), looks, pairing])
    decided, n = decided_share(judged)
    spans = [wall_span(one_plan(results[spec.name])[0]) for spec in specs if spec.name in results]
    body.append(["**all**", *total.values(), f"**{decided}/{n} ({100 * decided / max(n, 1):.0f} %)**",
                 f"{n} × 0.05 = {0.05 * n:.2f}", "", ""])
    return md_table(["ablation", *kinds, "decided", "expected false verdicts ≤", "looks (seeds per variant)",
                     "test"], body) + (
        f"\n\nCounted: distinct comparisons. A claim that reads the same runs with the same test as one "
        "before it (another ablation's, or a '_tuned' variant whose selection chose the preset's lr) is judged "
        "there and referenced; a claim true by construction is a check, shown in its section and not counted. "
        f"Each claim is judged at its looks — those its ablation's run budget can reach — each at α = {ALPHA:g} / "
        "(number of reachable looks), and keeps the first decision: over all its looks a claim whose effect is "
        f"absent comes out *reproduced* with probability at most {ALPHA:g}, and one whose effect is real comes out "
        f"*contradicted* with probability at most {ALPHA:g} (simulation tests check both, paired and Welch). Per "
        "ablation, 'expected false verdicts ≤' is the claims × α: were every claimed effect absent, at most that "
        f"many false *reproduced* in expectation (over all {n}: {ALPHA * n:.1f}); no correction across claims is "
        "made, so read an ablation's verdicts with that number beside them. Variants pair by seed (the same "
        "seed: the same data order and augmentation, the same pretrained backbone, the same initial weights where "
        "the architectures agree): two-variant claims use the paired t test, trends Page's test with each seed "
        "a block; a failed run counts against its variant (ranked last, Mann–Whitney). "
        "Where an ablation has a run budget (its file's MAX_RUNS: distinct training runs, lr selection and runs "
        "shared with other ablations included), a look gives seeds to the undecided claims nearest a decision "
        "first (the fewest seeds their observed difference would need, as in their power lines: noncentral t) "
        "while the budget lasts; a claim it stops at an earlier look has still been tested at that look's α, so "
        "the error control holds. A claim that reads a variant whose every run so far failed gets no more seeds."
        + (f"\n\nWall time of the runs behind these verdicts: {union_minutes(spans):.1f} min (from each ablation's start "
           "to its last row, ablations that ran side by side counted once; each one's own span is under its Settings "
           "used)." + machine_text(results) if spans and None not in spans else ""))


# a model every `--ablation all` call trains (gcn_k, first of its chain): its speed compares machines
# for rows of before the reference step was recorded
SPEED_REFERENCE = ("gcn_k", "k7", "GCN k = 7")


def normalised_minutes(minutes, step_ms, reference_ms=REFERENCE_MS):
    """Wall minutes as the reference machine would have taken them (a step of reference_ms there):
    on a machine whose reference step takes twice as long, a minute counts as half a minute."""
    return minutes * reference_ms / step_ms


def machine_text(results):
    """The machine the rows were trained on and its speed, so that a wall time can be compared with
    another machine's (the same code trained 1.5x slower on one VM than on another of the same CPU
    name): the reference step each run_all call timed at its start (benchmarks/train_step.py), and
    the wall time normalised to the reference machine; for rows of before that step was recorded,
    the training speed of the reference model (SPEED_REFERENCE) as the suite trained it."""
    used = {name: one_plan(rows)[0] for name, rows in results.items()}
    ok = pd.concat(used.values())
    ok = ok[ok["status"] == OK]
    if not {"cpu_model", "cpu_count", "device"} <= set(ok.columns):  # rows of before these were recorded
        return ""
    machines = ", ".join(f"{model} × {int(count)} cores ({device})" for (model, count, device), _ in
                         ok.groupby(["cpu_model", "cpu_count", "device"]))
    text = f" Machine: {machines}."
    steps = ok["reference_step_ms"].dropna() if "reference_step_ms" in ok else pd.Series(dtype=float)
    spans = [wall_span(rows) for rows in used.values()]
    if len(steps) and None not in spans:
        step_ms = steps.median()
        name, mode = REFERENCE
        return text + (f" Its speed: the reference step (`benchmarks.train_step` {name}, {mode}, 1 thread) took "
                       f"{step_ms:.1f} ms at the start of the run_all call, the median over "
                       + (f"{len(steps)} rows" if len(steps) == len(ok) else f"the {len(steps)} of {len(ok)} rows "
                          "that recorded it")
                       + f"; normalised to the reference machine ({REFERENCE_MS:g} ms for that step) the wall time "
                       f"is {normalised_minutes(union_minutes(spans), step_ms):.1f} min.")
    name, variant, label = SPEED_REFERENCE
    if name in used:
        ref = used[name]
        speeds = ref.loc[(ref["variant"] == variant) & (ref["status"] == OK), "train_img_per_s"].dropna()
        if len(speeds):
            text += (f" Its training speed, to compare this wall time with another machine's: {label} "
                     f"(`{name}`) {speeds.median():.0f} images/s, the median over its {len(speeds)} runs as the suite "
                     "trained them.")
    return text


def tuning_section(spec, results_dir):
    """The learning-rate selection of the "tune_lr" variants: held-out mIoU per lr (training
    images held out of training; never the validation split), diverged runs, the lr chosen."""
    tuned = [v for v in spec.variants if v.get("tune_lr")]
    path = selection_csv(results_dir, spec.name)
    if not tuned or not os.path.exists(path):
        return None
    rows, left_out = one_plan(read_rows(path))
    chosen = choose_lrs(spec, rows)
    scales = list(dict.fromkeys(s for v in tuned for s in v["tune_lr"]))
    body = []
    for v in tuned:
        line = [v["label"]]
        for scale in scales:
            runs = rows[rows["variant"] == lr_point_id(v["id"], scale)]
            ok, failed = runs[runs["status"] == OK], int((runs["status"] != OK).sum())
            line.append("–" if not len(runs) else
                        f"{fmt(ok['mIoU'].mean()) if len(ok) else 'diverged'}" + (f" ({failed} diverged)" if failed and len(ok) else "")
                        + f" @ {runs['lr'].iloc[0]:g}")
        line.append(f"{chosen[v['id']]:g}" if v["id"] in chosen else "none stable: not run")
        body.append(line)
    first = rows.iloc[0]
    data = json.loads(first["data_config"])
    text = (f"Each `_tuned` variant trains at the lr of the grid (× the preset's lr) with the best mean mIoU "
            f"on {data['holdout']} images held out of the training split, trained on the rest "
            f"({int(rows['seed'].max()) + 1} seed(s) per lr); the validation split is never used to choose. "
            "An lr at which a selection run diverged is not chosen. Cells: held-out mIoU % @ lr.")
    table = md_table(["variant", *[f"lr × {s:g}" for s in scales], "lr chosen"], body)
    return "\n\n".join(["### Learning rate of each variant, chosen on held-out training images", text, table]
                        + [f"- {note}" for note in left_out])


def facts_table(spec):
    body = [[f["fact"], fmt(f["computed"]), f.get("formula", ""), fmt(f.get("published")),
             "✓ match" if fact_holds(f) else "✗ MISMATCH"] for f in spec.exact_facts()]
    return md_table(["exact fact", "computed", "formula", "published", "check"], body)


def load_range(rows, column="load_avg_1m"):
    """The 1-min load average (when rows were written, or during the timing phase), against the core
    count: timings taken under a load above the core count shared the CPU with other work."""
    values = rows[column].dropna()
    if not len(values):
        return "not recorded"
    return f"{values.min():.1f}–{values.max():.1f} (1-min load average; {int(rows['cpu_count'].max())} cores)"


def mkl_paths(rows):
    """The MKL branch the rows were computed on (engine/reproducible.py), or why none is recorded."""
    paths = sorted(rows["mkl_cbwr"].dropna().astype(str).unique()) if "mkl_cbwr" in rows else []
    unpinned = int(rows["mkl_cbwr"].isna().sum()) if "mkl_cbwr" in rows else len(rows)
    return (", ".join(f"MKL_CBWR={p}" for p in paths) + (" and " if paths and unpinned else "")
            + (f"not recorded in {unpinned} row(s), written before MKL was pinned (engine/reproducible.py)"
               if unpinned else ""))


def wall_span(rows):
    """(start, end) of the run_all calls that wrote these rows: the first call's start and the last row
    (any pause between calls inside); None for rows of before call_started_at was recorded."""
    if "call_started_at" not in rows or rows["call_started_at"].isna().all():
        return None
    return pd.to_datetime(rows["call_started_at"].dropna()).min(), pd.to_datetime(rows["finished_at"]).max()


def wall_minutes(rows):
    span = wall_span(rows)
    return None if span is None else (span[1] - span[0]).total_seconds() / 60


def union_minutes(spans):
    """Minutes covered by the union of (start, end) spans: ablations run side by side count once."""
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total, reach = total + (end - start).total_seconds(), end
        elif end > reach:
            total, reach = total + (end - reach).total_seconds(), end
    return total / 60


def settings(rows):
    first = rows.iloc[0]
    seeds = sorted(rows["seed"].unique().tolist())
    failed = rows[rows["status"] != OK]
    items = [
        ("preset", ", ".join(sorted(rows["preset"].astype(str).unique()))),
        ("dataset", f"{first['dataset']} ({first.get('image_size')} px)"),
        ("backbone", first["backbone"]),
        ("iterations × batch", f"{first['iterations']} × {first['batch_size']}, base lr "
                               f"{', '.join(str(lr) for lr in sorted(rows['lr'].unique(), reverse=True))}"),
        ("seeds", f"{len(seeds)} ({', '.join(map(str, seeds))})"),
        ("boundary band", f"{first.get('boundary_band')} px"),
        ("device", ", ".join(sorted(rows["device"].astype(str).unique()))),
        ("CPU threads per run / CPU capability", f"{', '.join(str(int(t)) for t in sorted(rows['threads'].unique()))} / "
                                                 f"{', '.join(sorted(rows['cpu_capability'].astype(str).unique()))}"),
        ("MKL code path", mkl_paths(rows)),
        ("plan", f"`{first['plan_id']}`: the rows of the latest run of this ablation; rows of other settings "
                 "are never pooled with them (listed below if any)"),
        ("torch / torchvision", f"{first['torch']} / {first['torchvision']}"),
        ("runs", f"{len(rows)} ({len(failed)} failed)"),
        ("machine load while rows were written", load_range(rows)),
        *([("machine load during the timing phase", load_range(rows, "timing_load_avg_1m"))]
          if "timing_load_avg_1m" in rows else []),
        ("total run time", f"{rows['wall_s'].sum() / 60:.1f} min summed over runs (runs trained side by side with --jobs overlap in wall time)"),
        *([("wall time", f"{wall_minutes(rows):.1f} min, from the start of this ablation to its last row "
                         "(runs shared with an ablation run earlier were trained there, not counted here; "
                         "ablations that share no run go side by side on the same cores)")]
          if wall_minutes(rows) is not None else []),
        ("code", ", ".join(sorted(rows["git_sha"].astype(str).unique()))),
    ]
    text = "\n".join(f"- **{k}**: {v}" for k, v in items)
    for _, r in failed.iterrows():
        text += f"\n- failed: {r['variant']} seed {r['seed']}: {r['status']}"
    return text


def dataset_preview(rows, results_dir, path):
    """Sample images and labels of the embedded dataset the runs used (the "preview" analysis of their
    data config). Returns False, drawing nothing, when that analysis is not in the results folder."""
    analysis = data_analysis_file(results_dir, json.loads(rows.iloc[-1]["data_config"]), "preview")
    if not os.path.exists(analysis):
        return False
    preview = load_analysis(analysis)
    n = len(preview["image"])
    fig, axes = plt.subplots(2, n, figsize=(14, 3.8))
    for i in range(n):
        axes[0, i].imshow(preview["image"][i])
        axes[1, i].imshow(preview["label"][i], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
        axes[0, i].axis("off")
        axes[1, i].axis("off")
    fig.suptitle("embedded dataset: images (top) and labels (bottom; " + ", ".join(
        f"{c}={name}" for c, name in enumerate(preview["class_names"])) + ")")
    fig.tight_layout()
    save_figure(fig, path, 90)
    return True


def extra_sections(spec, rows, results_dir, fig_dir, rel_fig):
    """The paper-specific sections an ablation names in REPORT_SECTIONS ({section name: its
    arguments}), as markdown, in the order given. Each report function is called as
    fn(spec, rows, results_dir, fig_dir, rel_fig, **arguments)."""
    texts = [SECTION_FUNCTIONS[name](spec, rows, results_dir, fig_dir, rel_fig, **(kwargs or {}))
             for name, kwargs in spec.report_sections.items()]  # names checked when the file was loaded
    return [t for t in texts if t]


# the functions of engine/spec.py's SECTIONS (the names an ablation file may ask for)
SECTION_FUNCTIONS = {"erf": erf.erf_section, "lc_speed": lc_sections.speed_section,
                     "lc_stages": lc_sections.stage_map_section, "lc_probe": lc_sections.probe_section,
                     "psp_context": psp.context_section, "psp_curves": psp.curve_section,
                     "deeplab_fov": deeplab.fov_sections, "deeplab_crf": deeplab.crf_sections,
                     "standins": standins.standins_section}
assert set(SECTION_FUNCTIONS) == set(SECTIONS), "report/build.py draws exactly engine/spec.py's SECTIONS"


def section(spec, all_rows, fig_dir, rel_fig, results_dir="results", judged=None):
    rows, left_out = one_plan(all_rows)
    judged = judged if judged is not None else judged_claims({spec.name: all_rows}, [spec], one_plan)[spec.name]
    dataset = str(rows.iloc[0]["dataset"])
    plot(spec, rows, os.path.join(fig_dir, f"{spec.name}.png"))
    parts = [f"## {spec.title} (`{spec.name}`)", f"*{spec.paper}.* Published numbers: {spec.source}."]
    if dataset == "synthetic":
        parts.append("> Reproduced on the **embedded generated dataset**, not on the paper's data: compare "
                     "directions and claims, not absolute numbers. Δ = reproduced − published.")
    parts += ["### Published vs reproduced", results_table(spec, rows),
              f"![{spec.name}]({rel_fig}/{spec.name}.png)",
              "### Claims", claims_table(spec, rows, judged)]
    tuning = tuning_section(spec, results_dir)
    if tuning:
        parts.append(tuning)
    if spec.exact_facts is not None:
        parts += ["### Exact facts (paper dimensions)", facts_table(spec)]
    parts += extra_sections(spec, rows, results_dir, fig_dir, rel_fig)
    parts += ["### Settings used", settings(rows) + "".join(f"\n- {note}" for note in left_out)]
    deviations = spec.deviations.get(dataset if dataset == "synthetic" else "real", []) + \
        ([] if dataset == "synthetic" else spec.deviations.get(dataset, []))
    if deviations:
        parts += ["### Deviations from the paper", "\n".join(f"- {d}" for d in deviations)]
    return "\n\n".join(parts)


def read_results(results_dir, specs):
    """{ablation name: rows} of every ablation with rows in results_dir, all read and checked before
    anything is drawn or written. A file that cannot be used is a ResultsError naming it: see
    read_rows, and a metric column of the ablation missing from a file with finished rows (it would
    show every variant as "not run")."""
    found = {}
    for spec in specs:
        path = os.path.join(results_dir, f"{spec.name}.csv")
        rows = read_rows(path)
        if not len(rows):
            continue
        missing = [m for m in spec.metrics if m not in rows] if (rows["status"] == OK).any() else []
        if missing:
            raise ResultsError(f"{path}: no {', '.join(missing)} column (a metric of {spec.name}); "
                               "damaged or edited: restore it, or delete it and rerun")
        found[spec.name] = rows
        read_rows(selection_csv(results_dir, spec.name))  # checked now too: the report reads it
    return found


def build(results_dir="results", report_dir="report", specs=None):
    """Write report_dir/REPORT.md; returns its path. specs: ablation records (default: all).
    With no results to report (or a bad results file), raises ResultsError and writes nothing."""
    from ablations import load_all
    specs = specs or load_all()
    results = read_results(results_dir, specs)
    if not results:
        raise ResultsError(f"results folder {results_dir} not found" if not os.path.isdir(results_dir) else
                           f"no results in {results_dir} (no rows in any of "
                           f"{', '.join(spec.name + '.csv' for spec in specs)}): nothing to report")
    fig_dir = os.path.join(report_dir, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    sections, missing, synthetic_rows = [], [], None
    judged = judged_claims(results, specs, one_plan)
    for spec in specs:
        if spec.name not in results:
            missing.append(spec.name)
            continue
        rows = results[spec.name]
        sections.append(section(spec, rows, fig_dir, "figures", results_dir, judged[spec.name]))
        if synthetic_rows is None and str(rows.iloc[-1]["dataset"]) == "synthetic":
            synthetic_rows = rows
    head = ["# Reproducing segmentation ablations: published vs reproduced",
            "Generated by `python run_all.py` (or `python -m report.build`) from the CSVs in "
            f"`{results_dir}/`; do not edit by hand. Verdicts: *reproduced* = the claimed direction "
            "holds and is significant across seeds, *contradicted* = significant the other way, *absent* = "
            "neither, and an equivalence test (TOST) puts the difference inside the band the ablation file "
            "declares (e.g. ±2 mIoU), *inconclusive* = none of these (the statistic then says what the seeds "
            "could have detected, how many the observed difference would need, and why the claim stayed "
            "undecided).",
            "## Every claim at a glance", overview_table(judged),
            "The interval is two-sided 95 % (paired where the variants pair); the verdict is a one-sided "
            "test at α = 0.05 / (reachable looks), so at a single look a *reproduced* claim's interval "
            "can still reach past 0 (one-sided p between 0.025 and 0.05): read the verdict with its "
            "statistic in the claim's section.",
            "## Verdicts", verdict_summary(results, specs, judged)]
    if synthetic_rows is not None:
        if dataset_preview(synthetic_rows, results_dir, os.path.join(fig_dir, "dataset.png")):
            head.append("![embedded dataset](figures/dataset.png)")
        else:
            head.append("The figure of the embedded dataset is not drawn: its \"preview\" analysis is not in "
                        f"`{results_dir}/analysis/` (a rerun of the ablation computes it without training).")
    if missing:
        head.append("Not run yet: " + ", ".join(f"`{m}`" for m in missing) + ".")
    out = os.path.join(report_dir, "REPORT.md")
    write_text(out, "\n\n".join(head + sections) + "\n")  # atomic: a failed build leaves the old one
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--report-dir", default="report")
    args = parser.parse_args()
    print(build(args.results, args.report_dir))
