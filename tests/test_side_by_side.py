"""Ablations side by side (run_all with --jobs > 1): chains of ablations that share no run, one set of
workers, a timing phase with the machine alone, the same rows as one after another, and the suite's
wall time with overlapping ablations counted once."""
import threading
import time

import pandas as pd
import pytest
import torch

import run_all
from ablations import load
from engine.config import CommandLine, settings
from engine.one_ablation import chains
from engine.plans import prepare
from engine.workers import Workers
from probes.same_rows import compare
from report.build import machine_text, normalised_minutes, union_minutes, wall_minutes
from helpers import STUB_REFERENCE_MS, real_reference_step_ms


def test_chains_keep_ablations_that_share_runs_together_and_in_order(tmp_path):
    names = ["gcn_vs_conv", "lc_threshold", "gcn_k", "deeplab_fov", "lc_schemes", "deeplab_crf", "gcn_backbone"]
    todo, checked = {}, set()
    for name in names:
        spec = load(name)
        todo[name] = prepare(spec, settings(spec, "smoke", CommandLine()), str(tmp_path), checked, with_data=False)
    assert chains(todo) == [["gcn_vs_conv", "gcn_k"], ["lc_threshold", "lc_schemes"], ["deeplab_fov", "deeplab_crf"],
                            ["gcn_backbone"]]


def test_a_timing_phase_waits_for_running_work_and_holds_new_work_back_and_no_run_queues():
    workers = Workers(2, "cpu")
    try:
        workers.submit(time.sleep, 0.0).result()  # the workers are up
        running = workers.submit(time.sleep, 1.5)
        submitted = threading.Event()
        with workers.alone():
            assert running.done()  # entered only once the running work ended
            later = threading.Thread(target=lambda: (workers.submit(time.sleep, 0.0).result(), submitted.set()))
            later.start()
            time.sleep(0.5)
            assert not submitted.is_set()  # new work waits for the timing phase
        later.join(30)
        assert submitted.is_set()
        with workers.shared():  # work done here counts as busy too
            assert workers.busy == 1
        assert workers.busy == 0
        # one run per worker, nothing queued behind them: a third run waits for a worker to be free
        first, second = workers.submit(time.sleep, 1.5), workers.submit(time.sleep, 1.5)
        third = workers.submit(time.sleep, 0.0)
        assert first.done() or second.done()
        third.result()
    finally:
        workers.close()


def test_ablations_side_by_side_write_the_rows_they_write_one_after_another(tmp_path):
    common = ["--ablation", "gcn_k", "--ablation", "lc_threshold", "--preset", "smoke", "--seeds", "1",
              "--no-progress"]
    for jobs in ("1", "2"):  # lc_threshold times its runs: its timing phase runs beside gcn_k's training
        out = tmp_path / f"jobs{jobs}"
        assert run_all.main(common + ["--jobs", jobs, "--out", str(out), "--report-dir", str(out / "report")]) == 0
    total, differ = compare(str(tmp_path / "jobs1"), str(tmp_path / "jobs2"))
    assert total == 16 and differ == []
    timed = pd.read_csv(tmp_path / "jobs2" / "lc_threshold.csv")
    assert timed["infer_fps"].notna().all() and timed["timing_position"].notna().all()
    assert "Wall time of the runs behind these verdicts" in (tmp_path / "jobs2" / "report" / "REPORT.md").read_text()
    # every row records the reference step run_all timed at its start (tests: conftest's stub)
    assert (timed["reference_step_ms"] == STUB_REFERENCE_MS).all()


def test_the_suites_wall_time_counts_overlapping_ablations_once():
    t = lambda minute: pd.Timestamp("2026-12-05T10:00:00") + pd.Timedelta(minutes=minute)  # noqa: E731
    assert union_minutes([(t(0), t(10)), (t(5), t(12)), (t(20), t(25))]) == 17
    assert union_minutes([(t(0), t(10)), (t(2), t(3))]) == 10
    assert union_minutes([(t(0), t(4)), (t(4), t(6))]) == 6


def test_the_wall_time_names_its_machine_and_its_speed_on_the_reference_model():
    row = dict(plan_id="p", status="ok", cpu_model="AMD EPYC", cpu_count=2, device="cpu")
    gcn = pd.DataFrame([{**row, "variant": "k7", "train_img_per_s": s} for s in (240.0, 250.0, 300.0)]
                       + [{**row, "variant": "k3", "train_img_per_s": 900.0},
                          {**row, "variant": "k7", "status": "diverged", "train_img_per_s": 10.0}])
    psp = pd.DataFrame([{**row, "cpu_model": "Intel Xeon", "variant": "b1", "train_img_per_s": 50.0}])
    text = machine_text({"gcn_k": gcn, "psp_pool": psp})
    assert "Machine: AMD EPYC × 2 cores (cpu), Intel Xeon × 2 cores (cpu)." in text
    assert "GCN k = 7 (`gcn_k`) 250 images/s, the median over its 3 runs" in text  # ok k7 runs only
    assert "images/s" not in machine_text({"psp_pool": psp})  # no reference model trained: no speed


def test_the_reference_step_is_timed_on_this_machine():
    threads = torch.get_num_threads()
    ms = real_reference_step_ms(steps=1, rounds=2, warmup=1)
    assert 0 < ms < 60_000 and torch.get_num_threads() == threads  # the caller's threads restored


def test_a_reference_step_that_cannot_run_is_one_line_and_the_runs_go_on(monkeypatch, capsys):
    from types import SimpleNamespace

    from benchmarks import train_step

    def missing(*args, **kwargs):
        raise FileNotFoundError("weights/small-x-colour.pt: no such stand-in weights file")
    monkeypatch.setattr(train_step, "reference_step_ms", missing)
    assert run_all.reference_speed(SimpleNamespace(device="cpu"), None) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was not timed" in err and "weights/small-x-colour.pt" in err


def test_the_wall_time_is_normalised_to_the_reference_machine_by_its_reference_step():
    # hand-computed: a machine whose step takes 134.2 ms (twice the reference's 67.1) ran 97.6 min
    assert normalised_minutes(97.6, 134.2) == pytest.approx(48.8)
    assert normalised_minutes(10.0, 67.1) == pytest.approx(10.0)
    assert normalised_minutes(10.0, 33.55, reference_ms=67.1) == pytest.approx(20.0)
    t = lambda minute: str(pd.Timestamp("2026-12-05T10:00:00+00:00") + pd.Timedelta(minutes=minute))  # noqa: E731
    row = dict(plan_id="p", status="ok", cpu_model="AMD EPYC", cpu_count=2, device="cpu", call_started_at=t(0))
    gcn = pd.DataFrame([{**row, "variant": "k7", "reference_step_ms": 134.2, "finished_at": t(12)},
                        {**row, "variant": "k3", "reference_step_ms": 134.2, "finished_at": t(4)}])
    text = machine_text({"gcn_k": gcn})
    assert "took 134.2 ms at the start of the run_all call, the median over 2 rows" in text
    assert "(67.1 ms for that step) the wall time is 6.0 min." in text  # 12 min × 67.1 / 134.2
    older = pd.DataFrame([{**row, "variant": "b1", "finished_at": t(1), "train_img_per_s": 50.0}])
    assert "the 2 of 3 rows that recorded it" in machine_text({"gcn_k": gcn, "psp_pool": older})


def test_a_suite_resumed_in_a_second_call_counts_neither_the_pause_nor_one_calls_speed_for_the_other():
    t = lambda minute: str(pd.Timestamp("2026-12-05T10:00:00+00:00") + pd.Timedelta(minutes=minute))  # noqa: E731
    row = dict(plan_id="p", status="ok", cpu_model="AMD EPYC", cpu_count=2, device="cpu")
    first = dict(call_started_at=t(0), reference_step_ms=134.2)  # killed after its row at minute 10
    second = dict(call_started_at=t(60), reference_step_ms=67.1)  # the rerun, on a machine twice as fast
    gcn = pd.DataFrame([{**row, **first, "variant": "k7", "finished_at": t(10)},
                        {**row, **second, "variant": "k3", "finished_at": t(66)}])
    psp = pd.DataFrame([{**row, **second, "variant": "b1", "finished_at": t(64)}])
    assert wall_minutes(gcn) == 16  # 10 + 6: the 50-minute pause between the calls is in neither span
    assert wall_minutes(psp) == 4
    text = machine_text({"gcn_k": gcn, "psp_pool": psp})
    # hand-computed: 10 min × 67.1 / 134.2 + 6 min × 67.1 / 67.1 = 11.0
    assert "134.2 / 67.1 ms at the starts of the run_all calls that wrote the rows" in text
    assert "the wall time is 11.0 min." in text
    assert union_minutes([(pd.Timestamp(t(0)), pd.Timestamp(t(10))), (pd.Timestamp(t(5)), pd.Timestamp(t(12)))],
                         [0.5, 1.0]) == 7  # 10 min at 0.5, then the 2 min only the second covers at 1
