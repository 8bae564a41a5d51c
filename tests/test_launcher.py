"""--launcher local: every run group is a submitit job (LocalExecutor: processes on this machine),
writes its rows into its run folder, and the submitting process merges them into the CSV. The same
path as --launcher slurm but the executor."""
import os

import pandas as pd
import pytest

import run_all
from engine.plans import Plan
from engine.tools.launch import check_launcher
from engine.workers import RunJob

COMMON = ["--ablation", "gcn_k", "--preset", "smoke", "--no-progress"]


def test_launcher_local_writes_the_rows_a_plain_run_writes(tmp_path):
    pytest.importorskip("submitit")
    plain, launched = tmp_path / "plain", tmp_path / "launched"
    assert run_all.main(COMMON + ["--jobs", "1", "--out", str(plain), "--report-dir", str(plain / "report")]) == 0
    assert run_all.main(COMMON + ["--launcher", "local", "--cpus-per-run", "1", "--out", str(launched),
                                  "--report-dir", str(launched / "report")]) == 0
    a = pd.read_csv(plain / "gcn_k.csv").set_index("variant").sort_index()
    b = pd.read_csv(launched / "gcn_k.csv").set_index("variant").sort_index()
    assert b.index.is_unique and list(a.index) == list(b.index) and (b["status"] == "ok").all()
    assert (a["run_id"] == b["run_id"]).all() and (a["mIoU"] == b["mIoU"]).all()  # the same computation
    for run_id in b["run_id"]:  # each job left its rows in its run folder, and its log under jobs/
        assert any(name.startswith("rows-") for name in os.listdir(launched / "runs" / run_id))
    assert os.listdir(launched / "jobs")
    # a rerun finds every row done: no job is submitted
    before = sorted(os.listdir(launched / "jobs"))
    assert run_all.main(COMMON + ["--launcher", "local", "--out", str(launched), "--report-dir",
                                  str(launched / "report")]) == 0
    assert sorted(os.listdir(launched / "jobs")) == before


def test_a_job_at_its_time_limit_is_submitted_again_as_itself():
    pytest.importorskip("submitit")
    plan = Plan(ablation="a", variant="v", seed=0, preset="smoke", data={"name": "synthetic"},
                model={"arch": "single_head"}, train={}, eval={}, plan_id="p", looks=(1,))
    job = RunJob([plan], "out", "cpu", "sha", None)
    again = job.checkpoint()
    assert isinstance(again.function, RunJob) and again.function.plans == job.plans
    assert again.function.rows_path() == job.rows_path()  # the same run folder: training resumes from ckpt.pt


@pytest.mark.parametrize("options, message", [
    ({"name": "pbs"}, "unknown launcher 'pbs'"),
    ({"name": "local", "gpus_per_run": 0, "cpus_per_run": 0, "time_min": 10, "folder": "f"}, "cpus_per_run"),
    ({"name": "local", "gpus_per_run": 0, "cpus_per_run": 1, "time_min": 10, "folder": "f", "queue": "x"},
     "unknown launcher option"),
])
def test_bad_launcher_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        check_launcher(options)


def test_a_job_times_the_evaluations_of_its_run_together(tmp_path):
    """lc_threshold's six ρ rows of one trained model are one job: each row gets its own speed, timed
    in the job (its node to itself), interleaved, with the cascade's stage times of eval mode."""
    from ablations import load
    from engine.config import CommandLine, settings
    from engine.plans import plan_runs
    from files import read_json
    spec = load("lc_threshold")
    plans = plan_runs(spec, settings(spec, "smoke", CommandLine(seeds=1, iterations=2)))
    run_id = next(p.run_id for p in plans if p.variant == "r0985")
    group = [p for p in plans if p.run_id == run_id]
    assert len(group) == 6
    rows = read_json(RunJob(group, str(tmp_path), "cpu", "sha", None)())
    assert [r["variant"] for r in rows] == [p.variant for p in group]
    assert all(r["status"] == "ok" and r["infer_ms"] > 0 for r in rows)
    assert sorted(name for name in os.listdir(tmp_path / "runs" / run_id) if name.startswith("timing-")) \
        == sorted(f"timing-{p.eval_id}.json" for p in group)
