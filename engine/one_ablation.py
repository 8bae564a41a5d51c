"""One ablation, driven one way: plans → runs → rows → verdicts, in run_ablation from top to bottom.
Its selection runs choose the tuned settings (the plans with them), then look by look the plans of the
seeds wanted are run (engine/workers.py) into results/<name>.csv and the claims judged from those rows
(engine/design.py) to say which variants get the next look's seeds; last, the analyses of the network
and the dataset that every finished row should have (engine/analysis.py).

The path of one run: run_all.py → engine.config.settings → engine.plans.prepare (plans, checked) →
run_ablation → workers.run_plans → one_run.run_group (train, evaluate) → timing → rows.make_row → CSV;
the report then judges the claims from the rows (engine.design.claim_verdicts).
"""
import contextlib
import itertools
import os

from tqdm import tqdm

from engine.analysis import save_config_analyses
from engine.design import claim_verdicts, first_look_runs, futile, next_look
from engine.distributed import is_main
from engine.plans import chosen, fine_crf_plans, plan_runs
from engine.one_run import save_missing_run_analyses
from engine.rows import OK, read_rows
from engine.tuning import selection_csv
from engine.workers import remove_stale_tmp, run_plans
from files import now_iso


def run_ablation(prepared, out_dir="results", device="cpu", jobs=1, progress=True, launcher=None, workers=None,
                 reference_ms=None):
    """Train and evaluate the runs of a prepared ablation (engine.plans.prepare: checked); rows go to
    out_dir/<name>.csv. Returns the number of rows written by this call. workers: run_all's
    (engine/workers.py Workers), shared with the ablations that run beside this one.

    The sequential design: with the preset's seeds a list of looks (e.g. [3, 5, 8]), every variant
    first gets looks[0] seeds; after each look the claims are judged, and only the variants of claims
    still undecided get seeds up to the next look, nearest a decision first, within the run budget.
    Finished runs are reused, so a rerun (or a killed run's rerun) redoes no work. reference_ms: the
    machine's reference speed that run_all measured, recorded in each row."""
    spec, settings = prepared.spec, prepared.settings
    csv_path = os.path.join(out_dir, f"{spec.name}.csv")
    progress = progress and is_main()  # under torchrun, rank 0 speaks for all
    os.makedirs(os.path.join(out_dir, "runs"), exist_ok=True)
    remove_stale_tmp(out_dir)
    started = now_iso()

    def run(plans, csv, what):
        """Plans → runs → rows in csv; the number of rows written."""
        return run_plans(spec.name, plans, csv, out_dir, device, jobs, progress, what, started, launcher, workers,
                         reference_ms)

    # the plans, with the settings the selection runs choose (lr, CRF) on held-out training images
    written = run_selection(prepared, out_dir, run)
    plans = chosen_plans(prepared, out_dir)
    # look by look: the seeds wanted run, then the claims judged on their rows say who gets the next look's
    looks, wanted = settings.looks, {p.variant for p in plans}
    planned = first_look_runs(plans, prepared.selection)
    for k, n in enumerate(looks, 1):
        written += run([p for p in plans if p.seed < n and p.variant in wanted], csv_path, f"look {k}/{len(looks)}")
        wanted = more_seeds(spec, settings, plans, csv_path, k, planned, progress) if k < len(looks) else set()
        if not wanted:
            break
    # the analyses the finished rows lack (of the dataset, of the untrained network)
    if is_main():
        with workers.shared() if workers else contextlib.nullcontext():  # computed here: this process's CPU
            save_missing_analyses(spec, plans, out_dir, device)
    return written


def run_selection(prepared, out_dir, run):
    """The selection runs of the tuned variants (their lr and CRF settings; the CRF's fine search round by
    round, until it stops) into the ablation's selection CSV; the number of rows written."""
    if not prepared.selection:
        return 0
    tuning_csv = selection_csv(out_dir, prepared.spec.name)
    os.makedirs(os.path.dirname(tuning_csv), exist_ok=True)
    written, done = run(prepared.selection, tuning_csv, "lr selection"), set()
    for round_ in itertools.count(1):
        fine = fine_crf_plans(prepared.spec, prepared.settings, prepared.selection, out_dir)
        if not fine or {p.key for p in fine} <= done:  # (a round that wrote no rows ends it too)
            return written
        done |= {p.key for p in fine}
        written += run(fine, tuning_csv, f"CRF fine search {round_}")


def chains(prepared):
    """The ablations (name → prepared, in run order) as chains that share no training run: an ablation
    whose run ids (its plans' or its selection runs') meet another's is in its chain, after it, so it
    reuses those runs instead of waiting for them. Chains can run side by side; each keeps the order."""
    runs = {name: {p.run_id for p in (*prep.plans, *prep.selection)} for name, prep in prepared.items()}
    order = list(prepared)
    out = []
    for name in order:
        meet = [chain for chain in out if any(runs[name] & runs[other] for other in chain)]
        merged = sorted([other for chain in meet for other in chain] + [name], key=order.index)
        out = [chain for chain in out if chain not in meet] + [merged]
    return sorted(out, key=lambda chain: order.index(chain[0]))


def chosen_plans(prepared, out_dir):
    """The ablation's plans with the lr and CRF settings its selection runs in out_dir chose (the
    variants none could be chosen for left out); without selection runs, as prepared."""
    if not prepared.selection:
        return prepared.plans
    lrs, crfs, untuned = chosen(prepared.spec, prepared.selection, out_dir)
    return [p for p in plan_runs(prepared.spec, prepared.settings, lrs, crfs) if p.variant not in untuned]


def save_missing_analyses(spec, plans, out_dir, device="cpu"):
    """The analyses that the finished rows of the ablation's plans lack: of the dataset and of the
    untrained network (engine/analysis.py), computed from their configuration, no run folder needed; and
    of the trained model, from its run folder's model.pt where it is kept (engine/one_run.py
    save_missing_run_analyses)."""
    rows = read_rows(os.path.join(out_dir, f"{spec.name}.csv")).to_dict("records")
    finished = {(r["variant"], int(r["seed"]), r["run_id"]) for r in rows if r["status"] == OK}
    plans = [p for p in plans if (p.variant, p.seed, p.run_id) in finished]
    save_config_analyses(out_dir, plans)
    save_missing_run_analyses(plans, out_dir, device)


def more_seeds(spec, settings, plans, csv_path, k, planned, progress):
    """After look k: the variants that get seeds up to the next look (engine/design.py next_look),
    the undecided claims nearest a decision first (fewest seeds needed at the observed difference;
    ties in file order), less those the futility rule stops (engine/design.py futile)."""
    rows = read_rows(csv_path)
    rows = rows[rows["plan_id"] == plans[0].plan_id]
    verdicts = sorted(claim_verdicts(spec, rows, list(settings.looks), upto=k), key=lambda v: v.need)
    stopped = [v.claim for v in verdicts if futile(v, settings.looks)]
    undecided = [v.claim for v in verdicts if not v.decided and not futile(v, settings.looks)]
    if progress and stopped:
        tqdm.write(f"{spec.name}: {len(stopped)} undecided claim(s) get no more seeds: their power lines need "
                   f"more than the last look's {settings.looks[-1]} seeds per variant (futility rule)")
    failed = {v for v, g in rows.groupby("variant") if (g["status"] != OK).all()}
    wanted, left, hopeless = next_look(undecided, plans, settings.looks[k], planned, settings.max_runs, failed)
    if progress and hopeless:
        tqdm.write(f"{spec.name}: {len(hopeless)} undecided claim(s) get no more seeds: every run of "
                   f"{', '.join(sorted(failed & {v for c in hopeless for v in c.variants()}))} failed")
    if progress and left:
        tqdm.write(f"{spec.name}: {len(left)} undecided claim(s) get no more seeds: max_runs "
                   f"{settings.max_runs} reached")
    if progress and wanted:
        tqdm.write(f"{spec.name}: {len(undecided)} claim(s) undecided after look {k}; seeds up to "
                   f"{settings.looks[k]} for {', '.join(sorted(wanted))}")
    return wanted
