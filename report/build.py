"""Build report/REPORT.md and report/APPENDIX.md (+ figures/) from the results CSVs and the ablation files.

REPORT.md (kept under 80 KB: a read of ten minutes) opens with every claim's verdict, then what the
embedded data can and cannot test (report/data_page.py); then, for each ablation with results: the
published table beside the reproduced one (mean ± std over seeds), the difference, a figure with each
claim's verdict (report/table_figure.py), the claims, the paper-specific sections the ablation names in
REPORT_SECTIONS and the settings. APPENDIX.md (report/appendix.py) holds what a reader checks rather than
reads: the deviations from the paper (each listed once), the notes beside each ablation file, the detail
of the paper-specific sections, exact facts and provenance.
Run: python -m report.build [--results DIR] [--report-dir DIR]

The report reads only the CSV rows, the analysis data saved beside them
(results/analysis/*.npz) and the ablation files: never the run folders (not committed); it never
re-plans runs or builds a trained network. The one exception to "no dataset, no network": the mechanism
probes (probes/mechanisms.py) generate held-out scenes and build untrained networks from the rows' own
configs, as pure functions of them. REPORT.md is a pure function of these, and the figures are saved
without version metadata, so rebuilding from the same data gives the same bytes.
"""
import argparse
import json
import math
import os
import re
from dataclasses import dataclass, field

import pandas as pd

from benchmarks.train_step import REFERENCE, REFERENCE_MS
from engine.analysis import set_aside_damaged_analyses
from engine.claims import DECIDED, RULE_TEXT, Outcome, Rule, fact_holds
from engine.design import SOFT_SEED_SDS, family_error, rows_looks, soft_failures
from engine.rows import OK, ResultsError, read_rows, rows_problem
from engine.stats import ALPHA
from engine.tuning import choose_lrs, lr_point_id, selection_csv
from files import write_text
from report import deeplab, erf, lc_sections, psp, standins  # noqa: F401  (they register their sections)
from report.appendix import APPENDIX, appendix, appendix_link, appendix_section
from report.common import METRIC_NAMES, SECTIONS, fmt, md_table, mean_std, per_seed
from report.data_page import ANCHOR as DATA_PAGE, config_name, data_page
from report.overview import (COUNTED_OUTCOMES, NOT_RUN, anchor, assertion_counts, difference_text, family_text,
                             heading, judged_assertions, judged_claims, left_out_text, mechanisms_list, overview_table,
                             pair_correlations, pairing_text, testable_text)
from report.table_figure import plot


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
        looks = rows_looks(rows)
        later = looks[looks.index(n) + 1] if n in looks else most
        have = rows[rows["status"] == OK].groupby("variant")["seed"].nunique()
        extra = sum(max(0, later - int(have.get(v, 0))) for v in verdict.claim.variants())
        used = rows["run_id"].nunique() if "run_id" in rows else len(rows)
        if budget is None or used + extra <= budget:  # e.g. a claim added after the runs
            return (f"needs look {looks.index(later) + 1 if later in looks else len(looks)} ({later} seeds per "
                    f"variant: about {extra} more runs, within the run budget): the design would ask for them now, "
                    "and they are not in the committed results")
        return (f"about {need} seeds per variant would do, within the design's {most}, but the run budget "
                f"({budget} runs) was spent before its next look")
    return f"at the design's {most} seeds; the estimate of about {need} is itself uncertain at so few seeds"


def claim_row(spec, rows, j, text, testable=True):
    """One comparison's row: its verdict, the look that decided it, the deciding comparison, the statistic; a
    check (true by construction) and a comparison judged in another ablation say so. Its power line and why it
    stayed undecided are left out under an assertion not testable on this data (no number of seeds would make
    it testable)."""
    verdict = j.verdict
    statistic, failed = verdict.statistic, failed_runs(rows, verdict.claim)
    if not testable:  # what more seeds could detect is moot where the mechanism is absent
        statistic = statistic.split("; power: ")[0]
    # 'a − b = +1.23 (paired t, …)': the difference stands in the deciding-comparison column already
    statistic = re.sub(rf"^{re.escape(verdict.shown.what)} = [+-]?\d+\.\d+ ", "", statistic)
    if failed:
        statistic += f"; failed runs (counted, ranked last): {', '.join(failed)}"
    accuracy = verdict.claim.metric in getattr(spec, "bands", {})  # speeds and shares have no mechanism to miss
    soft = soft_failures(rows, verdict.claim.metric, verdict.claim.minus) if accuracy else {}
    soft = [f"{v} seed {s} ({x:.1f})" for v in verdict.claim.variants() for s, x in soft.get(v, [])]
    if soft:
        statistic += f"; **soft failure{'s' if len(soft) > 1 else ''}**: {', '.join(soft)}"  # defined in the head
    if not verdict.decided and j.counted and testable:
        statistic += f". **Why undecided:** {why_undecided(spec, rows, verdict)}"
    outcome = f"**{verdict.outcome}**"
    if verdict.claim.is_check:
        outcome = f"check: {'holds' if verdict.outcome == 'reproduced' else verdict.outcome} (by construction: " \
                  f"{verdict.claim.by_construction}; not counted as evidence)"
    elif j.same_as:
        outcome += f" (the same runs and test as `{j.same_as[0]}`'s “{j.same_as[1]}”: counted there)"
    return [text, outcome, f"{verdict.look}/{verdict.looks}, {verdict.seeds} seeds", difference_text(verdict),
            statistic]


def claims_table(spec, rows, judged, assertions=None):
    """A row per assertion of the paper (where it stands; its rule), its comparisons beneath it (one
    comparison: on the assertion's own row)."""
    if assertions is None:
        assertions = judged_assertions({spec.name: judged}, [spec], {spec.name: rows}, lambda r: (r, []))[spec.name]
    body = []
    for ja in assertions:
        a = ja.assertion
        head = f"**{a.text}** ({a.where}{'; beyond the paper, not counted' if a.beyond_paper else ''})"
        if ja.missing:
            body.append([head, f"**{NOT_RUN}**", "–", "–", f"needs runs of {', '.join(ja.missing)}"])
        elif len(ja.subs) == 1:
            row = claim_row(spec, rows, ja.subs[0], head, ja.outcome != Outcome.NOT_TESTABLE)
            body.append(row if ja.outcome != Outcome.NOT_TESTABLE else
                        [row[0], f"**{ja.outcome}** (its comparison: {row[1]})", *row[2:]])
        else:
            body.append([f"{head}, {len(ja.subs)} comparisons, rule *{a.rule}*", f"**{ja.outcome}**", "", "", ""])
            body += [claim_row(spec, rows, j, f"↳ {j.verdict.claim.text}", ja.outcome != Outcome.NOT_TESTABLE)
                     for j in ja.subs]
    return md_table(["assertion (where) / ↳ comparisons", "verdict", "look",
                     "deciding comparison [interval (level)]", "statistic"], body)


def verdict_summary(results, specs, judged, assertions):
    """Verdicts of the counted assertions per ablation, the share decided, the family-wise picture and the pairing."""
    kinds = list(COUNTED_OUTCOMES)
    body, total = [], dict.fromkeys(kinds, 0)
    for spec in specs:
        if spec.name not in results:
            continue
        rows, _ = one_plan(results[spec.name])
        claims = judged[spec.name]
        counts = assertion_counts(assertions[spec.name])
        total = {k: total[k] + counts[k] for k in kinds}
        looks = ", ".join(map(str, rows_looks(rows)))
        budget = spec.max_runs.get(rows["preset"].iloc[0])
        looks += f"; at most {budget} runs" if budget else ""
        rs = pair_correlations(spec, rows)
        pairing = pairing_text(claims) + (f"; pair r median {sorted(rs)[len(rs) // 2]:+.2f} over {len(rs)} claims"
                                        if rs else "")
        other = sum(not ja.counted for ja in assertions[spec.name])
        body.append([f"`{spec.name}`", *counts.values(), f"{sum(counts[k] for k in DECIDED)}/{sum(counts.values())}"
                     + (f" (+{other} not counted)" if other else ""), family_text(claims, family_error(spec, rows)),
                     looks, pairing])
    decided, n = sum(total[k] for k in DECIDED), sum(total.values())
    calls = call_spans(pd.concat([one_plan(results[spec.name])[0] for spec in specs if spec.name in results])) \
        if any(spec.name in results for spec in specs) else {}
    comparisons = sum(j.counted for claims in judged.values() for j in claims)
    body.append(["**all**", *total.values(), f"**{decided}/{n} ({100 * decided / max(n, 1):.0f} %)**",
                 f"{comparisons} comparisons; false *reproduced* expected ≤ {ALPHA * comparisons:.2f}", "", ""])
    return md_table(["ablation", *[{Outcome.NOT_TESTABLE: "not testable"}.get(k, k) for k in kinds], "assertions decided",
                     "P(≥ 1 false verdict) if nothing differed, simulated (comparisons × α = false *reproduced* expected)",
                     "looks (seeds per variant)", "test"], body) + (
        "\n\nCounted: the papers' assertions, each once; how comparisons are made distinct, judged at their looks, "
        f"paired, and what the family chance means: [the appendix]({APPENDIX}#method)."
        + (f"\n\nWall time of the runs behind these verdicts: {wall_minutes_of(calls):.1f} min (from the start of "
           "each run_all call that wrote them to its last row, ablations that ran side by side counted once; each "
           "one's own span is under its Settings used)." + machine_text(results) if calls else ""))


# Said while the committed rows are older than code that moves their numbers; emptied when every table is
# regenerated from the code as it is (the deviations describe the code, the rows record their git_sha)
CODE_AHEAD_OF_ROWS = (
    "> **The rows predate the current code and data.** Since they were computed, changes that move numbers went in: "
    "the authors' test protocols (PSPNet, DeepLab-MSc, the CRF search, fc6 by SGEMM), 1×1 convolutions through "
    "oneDNN, and most tables' quick-preset data, chosen by issue 37's rule for the papers' mechanisms "
    "(data/MECHANISMS.md). The rows and the data page are the old code's on the old data; the deviations describe "
    "the current ones. Every table is regenerated once (each row's `git_sha` says which code computed it).")


def counting_method():
    """How the verdicts are counted, judged and paired (the appendix's first section)."""
    return "\n\n".join(['<a id="method"></a>', "## How the verdicts are counted and judged", (
        "Counted: the papers' assertions, each once (its verdict combines its comparisons by its rule: "
        f"{RULE_TEXT[Rule.EVERY]}), not those beyond the papers, checks, or a table's restatement of an assertion "
        "whose every comparison is counted in another table. Comparisons are distinct: a claim that reads the same runs and evaluations with the same test, "
        "pairing and band as one "
        "before it (another ablation's, or a '_tuned' variant whose selection chose the preset's lr) is judged "
        "there and referenced; a claim true by construction is a check, shown in its section and not counted. "
        f"Each claim is judged at its looks — those its ablation's run budget can reach — each at α = {ALPHA:g} / "
        "(number of reachable looks), and keeps the first decision: over all its looks a claim whose effect is "
        f"absent comes out *reproduced* with probability at most {ALPHA:g}, and one whose effect is real comes out "
        f"*contradicted* with probability at most {ALPHA:g} (simulation tests check both, paired and Welch). Per "
        "ablation, the family: the chance that at least one of its comparisons (checks aside) gets a false verdict of "
        "either kind (*reproduced* or *contradicted*; a 'matches' claim, *contradicted*) were no variant different "
        "from any other, simulated under this design — its looks, levels, bands and pairing, values in units of "
        "the table's seed noise with its median pair correlation (engine/design.py family_error, 200 simulations, "
        "± about 3 points) — beside the count of its comparisons × α (the expected number of false *reproduced*). "
        "No correction across comparisons is made, so read an ablation's verdicts with that chance beside them. A claim's variants pair by seed when "
        "they train on one data config (the same seed: the same data order and augmentation, the same pretrained backbone, the same initial weights where "
        "the architectures agree): two-variant claims use the paired t test, trends Page's test with each seed "
        "a block; a failed run counts against its variant: it loses its pair in a paired sign test (ranked last "
        "within its seed in Page's test; unpaired, ranked last in Mann–Whitney's). "
        "Where an ablation has a run budget (its file's MAX_RUNS: distinct training runs, lr selection and runs "
        "shared with other ablations included), a look gives seeds to the undecided claims nearest a decision "
        "first (the fewest seeds their observed difference would need, as in their power lines: noncentral t) "
        "while the budget lasts; a claim it stops at an earlier look has still been tested at that look's α, so "
        "the error control holds. A claim that reads a variant whose every run so far failed gets no more seeds. "
        "An assertion names the mechanism it relies on and a probe of it (its file's ASSERTIONS, probes/mechanisms.py: "
        "a measurement with a threshold fixed by what it measures). Where a probe fails, the assertion is *not "
        "testable on this data*, whatever its comparisons say (they are still shown); where a probe's measurement "
        "is not saved yet, the verdict stands and says so. *Not testable* is no decision, and the headline gives "
        "the share of assertions testable here (every probe passed) and, of those, the share decided."
    )])


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
    calls = call_spans(pd.concat(used.values()))
    if len(steps) and calls:
        name, mode = REFERENCE
        call_steps = [ms if ms is not None else steps.median() for _, _, ms in calls.values()]
        distinct = sorted(set(call_steps), key=call_steps.index)
        took = (f"{steps.median():.1f} ms at the start of the run_all call" if len(distinct) == 1 else
                f"{' / '.join(f'{ms:.1f}' for ms in distinct)} ms at the starts of the run_all calls that wrote "
                "the rows (each call's minutes normalised by its own step)")
        normalised = union_minutes([(start, end) for start, end, _ in calls.values()],
                                   [normalised_minutes(1.0, ms) for ms in call_steps])
        return text + (f" Its speed: the reference step (`benchmarks.train_step` {name}, {mode}, 1 thread) took "
                       f"{took}, the median over "
                       + (f"{len(steps)} rows" if len(steps) == len(ok) else f"the {len(steps)} of {len(ok)} rows "
                          "that recorded it")
                       + f"; normalised to the reference machine ({REFERENCE_MS:g} ms for that step) the wall time "
                       f"is {normalised:.1f} min.")
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
    """The learning-rate selection of the "tune_lr" variants: (the lr chosen per variant, in a line of the
    report; the appendix's table of held-out mIoU per lr (training images held out of training; never the
    validation split) and diverged runs), or None."""
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
    title = "### Learning rate of each variant, chosen on held-out training images"
    picked = "; ".join(f"{line[0]} {line[-1]}" for line in body)
    return (f"**Learning rates of the `_tuned` variants**, chosen on held-out training images (the grid: appendix): "
            f"{picked}.", "\n\n".join([title, text, table] + [f"- {note}" for note in left_out]))


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


def versions(rows, column):
    """The versions of a package the rows were computed with ('not recorded' for rows of before it was)."""
    values = sorted(rows[column].dropna().astype(str).unique()) if column in rows else []
    return ", ".join(values) or "not recorded"


def call_spans(rows):
    """{start: (start, end, reference step ms or None)} of each ablation's run in a run_all call that wrote
    these rows (the rows' call_started_at: when run_all started that ablation): its start, its last row, and
    the reference step its call timed. A pause between calls (a killed suite resumed later) lies outside every
    span; what a killed call trained after its last row counts only where it was resumed from its checkpoint.
    {} for rows of before call_started_at was recorded."""
    if "call_started_at" not in rows or rows["call_started_at"].isna().all():
        return {}
    spans = {}
    for start, group in rows[rows["call_started_at"].notna()].groupby("call_started_at"):
        steps = group["reference_step_ms"].dropna() if "reference_step_ms" in group else pd.Series(dtype=float)
        spans[start] = (pd.to_datetime(start), pd.to_datetime(group["finished_at"]).max(),
                        float(steps.median()) if len(steps) else None)
    return spans


def wall_minutes(rows):
    """Minutes from the start of each run_all call that wrote these rows to its last row (None for rows of
    before call_started_at was recorded)."""
    return wall_minutes_of(call_spans(rows))


def wall_minutes_of(calls):
    return union_minutes([(start, end) for start, end, _ in calls.values()]) if calls else None


def union_minutes(spans, weights=None):
    """Minutes covered by the union of (start, end) spans: ablations run side by side count once. With
    weights (one a span), each minute counts at the weight of the span that first covers it."""
    total, reach = 0.0, None
    for (start, end), weight in sorted(zip(spans, weights or [1.0] * len(spans))):
        if reach is None or start > reach:
            total, reach = total + weight * (end - start).total_seconds(), end
        elif end > reach:
            total, reach = total + weight * (end - reach).total_seconds(), end
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
        ("torch / torchvision / numpy / scipy",
         " / ".join(versions(rows, package) for package in ("torch", "torchvision", "numpy", "scipy"))),
        ("runs", f"{len(rows)} ({len(failed)} failed)"),
        ("machine load while rows were written", load_range(rows)),
        *([("machine load during the timing phase", load_range(rows, "timing_load_avg_1m"))]
          if "timing_load_avg_1m" in rows else []),
        ("total run time", f"{rows['wall_s'].sum() / 60:.1f} min summed over runs (runs trained side by side with --jobs overlap in wall time)"),
        *([("wall time", f"{wall_minutes(rows):.1f} min, from the start of each run_all call that wrote these rows to its last row "
                         "(runs shared with an ablation run earlier were trained there, not counted here; "
                         "ablations that share no run go side by side on the same cores)")]
          if wall_minutes(rows) is not None else []),
        ("code", ", ".join(sorted(rows["git_sha"].astype(str).unique()))),
    ]
    text = "\n".join(f"- **{k}**: {v}" for k, v in items)
    for _, r in failed.iterrows():
        text += f"\n- failed: {r['variant']} seed {r['seed']}: {r['status']}"
    return text


def extra_sections(spec, rows, results_dir, fig_dir, rel_fig):
    """The paper-specific sections an ablation names in REPORT_SECTIONS ({section name: its
    arguments}), in the order given: ([markdown of the report], [markdown of the appendix]). Each report
    function is called as fn(spec, rows, results_dir, fig_dir, rel_fig, **arguments) and returns its
    markdown, or (the report's part, the appendix's part) where its detail is for checking, not reading."""
    main, appended = [], []
    for name, kwargs in spec.report_sections.items():  # names checked by check_sections
        text = SECTIONS[name][0](spec, rows, results_dir, fig_dir, rel_fig, **(kwargs or {}))
        text, extra = text if isinstance(text, tuple) else (text, None)
        main += [text] if text else []
        appended += [extra] if extra else []
    return main, appended


def check_sections(spec):
    """spec (an engine.spec.Ablation), its REPORT_SECTIONS checked against the sections registered
    (report/common.py SECTIONS): a name or a variant id unknown is a ValueError naming the file and the key."""
    for name, args in spec.report_sections.items():
        if name not in SECTIONS:
            raise ValueError(f"{spec.path}: REPORT_SECTIONS: unknown section {name!r}; known: {', '.join(SECTIONS)}")
        for arg in SECTIONS[name][1]:
            unknown = [i for i in flat_ids((args or {}).get(arg, ())) if i not in spec.variant_ids]
            if unknown:
                raise ValueError(f"{spec.path}: REPORT_SECTIONS[{name!r}][{arg!r}]: unknown variant id(s) "
                                 f"{', '.join(map(repr, unknown))}; variants: {', '.join(spec.variant_ids)}")
    return spec


def flat_ids(value):
    """The variant ids in a section argument: a string, or (nested) lists of them, or a dict's keys."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return list(value)
    return [i for item in value for i in flat_ids(item)]


def settings_line(rows):
    """The settings a reader needs beside the numbers (the rest is provenance: the appendix)."""
    first, seeds = rows.iloc[0], sorted(rows["seed"].unique().tolist())
    failed = rows[rows["status"] != OK]
    lrs = ", ".join(str(lr) for lr in sorted(rows["lr"].unique(), reverse=True))
    wall = wall_minutes(rows)
    text = (f"Preset {', '.join(sorted(rows['preset'].astype(str).unique()))}; {first['iterations']} iterations × "
            f"batch {first['batch_size']}, base lr {lrs}; seeds {', '.join(map(str, seeds))}; {len(rows)} runs "
            f"({len(failed)} failed)" + (f"; {wall:.1f} min wall time" if wall is not None else "") + ".")
    return text + "".join(f"\n- failed: {r['variant']} seed {r['seed']}: {r['status']}" for _, r in failed.iterrows())


def facts_line(spec):
    """One line in the section (the table is in the appendix); a mismatch is named there too."""
    facts = spec.exact_facts()
    wrong = [f["fact"] for f in facts if not fact_holds(f)]
    return (f"**Exact facts** (paper dimensions): {len(facts) - len(wrong)} of {len(facts)} match (the table: "
            "appendix)." + (f" ✗ MISMATCH: {'; '.join(wrong)}." if wrong else ""))


def deviations_of(spec, dataset):
    return spec.deviations.get("synthetic" if dataset == "synthetic" else "real", []) + \
        ([] if dataset == "synthetic" else spec.deviations.get(dataset, []))


@dataclass
class Listed:
    """What earlier sections of the report listed, so that each is listed once: {deviation text: the
    spec whose section lists it} and the papers cited."""
    deviations: dict = field(default_factory=dict)
    papers: set = field(default_factory=set)


def deviations_text(spec, dataset, listed):
    """The table's deviations not listed in an earlier section, and a link to each section that listed the
    rest; listed (a Listed) is updated."""
    own, shown = deviations_of(spec, dataset), listed.deviations
    earlier = {}
    for d in own:
        if d in shown:
            earlier.setdefault(shown[d].name, [shown[d], 0])[1] += 1
        else:
            shown[d] = spec
    lines = [f"- {d}" for d in own if shown[d] is spec]
    lines += [f"- and {n} listed under [`{name}`](#{anchor(where)})" for name, (where, n) in earlier.items()]
    return "\n".join(lines)


def section(spec, all_rows, fig_dir, rel_fig, results_dir, judged, assertions, listed):
    """(the table's section of REPORT.md, its part of the appendix). judged, assertions: the ablation's, as
    build() judged them; listed: what earlier sections listed (a Listed: deviations, papers cited), updated."""
    rows, left_out = one_plan(all_rows)
    dataset = str(rows.iloc[0]["dataset"])
    plot(spec, rows, os.path.join(fig_dir, f"{spec.name}.png"), judged)
    data = (" Data: " + ", ".join(f"[{config_name(json.loads(c))}](#{DATA_PAGE})" for c in rows['data_config'].unique()) + "."
            if dataset == "synthetic" else "")
    cited = "" if spec.own or spec.paper in listed.papers else f"*{spec.paper}.* "  # each paper cited once
    listed.papers.add(spec.paper)
    deviations = deviations_text(spec, dataset, listed)
    count = len(deviations_of(spec, dataset))
    parts = [heading(spec),
             f"{cited}Published numbers: {spec.source}.{data} "
             + (f"Its {count} deviation{'s' if count > 1 else ''} from the paper, probe" if count else "Probe")
             + f" histories, exact facts, provenance: {appendix_link(spec)}.",
             "### Published vs reproduced", results_table(spec, rows),
             f"![{spec.name}]({rel_fig}/{spec.name}.png)",
             "### Claims", claims_table(spec, rows, judged, assertions)]
    mechanisms = mechanisms_list(assertions or [])
    if mechanisms:
        parts.append(mechanisms)
    tuning, detail = tuning_section(spec, results_dir) or (None, None)
    if tuning:
        parts.append(tuning)
    if spec.exact_facts is not None:
        parts.append(facts_line(spec))
    extra, appended = extra_sections(spec, rows, results_dir, fig_dir, rel_fig)
    parts += extra
    parts.append("**Settings**: " + settings_line(rows) + "".join(f"\n- {note}" for note in left_out))
    measured = ["### Mechanisms and their probes", mechanisms_list(assertions, detail=True)] if mechanisms else []
    provenance = appendix_section(spec, deviations, facts_table(spec) if spec.exact_facts is not None else None,
                                  settings(rows) + "".join(f"\n- {note}" for note in left_out),
                                  measured + ([detail] if detail else []) + appended)
    return "\n\n".join(parts), provenance


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
        problem = rows_problem(rows, spec.metrics)  # every metric the report judges, not just mIoU
        if problem:
            raise ResultsError(f"{path} {problem}; restore the file, or delete that line and rerun")
        found[spec.name] = rows
        read_rows(selection_csv(results_dir, spec.name))  # checked now too: the report reads it
    return found


OWN_PART = ("# Your own ablations\n\nThe files that set `PAPER = None`: judged as the papers' claims are, and never "
            "counted in the papers' headline above (*Every assertion at a glance*, *Verdicts*).")


def build(results_dir="results", report_dir="report", specs=None):
    """Write report_dir/REPORT.md; returns its path. specs: ablation records (default: all).
    With no results to report (or a bad results file), raises ResultsError and writes nothing."""
    from ablations import load_all
    specs = [check_sections(spec) for spec in (load_all() if specs is None else specs)]
    results = read_results(results_dir, specs)
    if not results:
        raise ResultsError(f"results folder {results_dir} not found" if not os.path.isdir(results_dir) else
                           f"no results in {results_dir} (no rows in any of "
                           f"{', '.join(spec.name + '.csv' for spec in specs)}): nothing to report")
    set_aside_damaged_analyses(results_dir)
    fig_dir = os.path.join(report_dir, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    sections, provenance, missing, listed = [], [], [], Listed()
    # the headline is the papers' alone: your own ablations (PAPER = None) are judged apart, after them
    papers, own = [spec for spec in specs if not spec.own], [spec for spec in specs if spec.own and spec.name in results]
    paper_results = {name: rows for name, rows in results.items() if name in {spec.name for spec in papers}}
    judged = judged_claims(paper_results, papers, one_plan)
    assertions = judged_assertions(judged, papers, paper_results, one_plan, results_dir)
    every_judged = {**judged, **judged_claims(results, own, one_plan)}
    every_assertion = {**assertions, **judged_assertions(every_judged, own, results, one_plan, results_dir)}
    for spec in papers + own:
        if spec.name not in results:
            missing.append(spec.name)
            continue
        if own and spec is own[0]:
            sections.append(OWN_PART)
        main, appended = section(spec, results[spec.name], fig_dir, "figures", results_dir, every_judged[spec.name],
                                 every_assertion[spec.name], listed)
        sections.append(main)
        provenance.append(appended)
    head = ["# Reproducing segmentation ablations: published vs reproduced",
            "Generated by `python run_all.py` (or `python -m report.build`) from the CSVs in "
            f"`{results_dir}/`; do not edit by hand. Verdicts: *reproduced* = the claimed direction "
            "holds and is significant across seeds, *contradicted* = significant the other way, *absent* = "
            "neither, and an equivalence test (TOST) puts the difference inside the band the ablation file "
            "declares (e.g. ±2 mIoU), *inconclusive* = none of these (the statistic then says what the seeds "
            "could have detected, how many the observed difference would need, and why the claim stayed "
            "undecided), *not testable on this data* = a probe of the mechanism the assertion relies on failed. "
            f"A *soft failure*: a run that trained but scored {SOFT_SEED_SDS:g}+ seed sds below its "
            "variant's median (it misses the mechanism); flagged beside the claim and counted as it is. "
            "Each table's deviations from the paper, probe histories, exact facts and provenance: "
            f"[the appendix]({APPENDIX}).", *([CODE_AHEAD_OF_ROWS] if CODE_AHEAD_OF_ROWS else []),
            "## Every assertion at a glance", testable_text(assertions), overview_table(assertions),
            left_out_text(assertions),
            "The deciding comparison: a pair's difference, a trend's worst step (the trend is Page's test), a "
            "\"best\" claim's deciding rival; positive is as the paper says; the interval two-sided at 1 − 2α "
            "of the one-sided test that decided (α = 0.05 / reachable looks).",
            "## Verdicts", verdict_summary(paper_results, papers, judged, assertions)]
    page = data_page(results, papers + own, one_plan, results_dir, fig_dir, "figures")  # the data of every table shown
    if page:
        head.append(page)
    if missing:
        head.append("Not run yet: " + ", ".join(f"`{m}`" for m in missing) + ".")
    out = os.path.join(report_dir, "REPORT.md")
    # atomic: a failed build leaves the old ones
    write_text(os.path.join(report_dir, APPENDIX), appendix([counting_method(), *provenance], results_dir))
    write_text(out, "\n\n".join(head + sections) + "\n")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--report-dir", default="report")
    args = parser.parse_args()
    print(build(args.results, args.report_dir))
