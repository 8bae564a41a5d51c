"""The command line, end to end on the smoke preset."""
import os
import subprocess
import sys

import pandas as pd
import pytest

import run_all


def test_smoke_run_writes_csv_and_report(tmp_path):
    out, rep = tmp_path / "results", tmp_path / "report"
    args = ["--ablation", "gcn_k", "--preset", "smoke", "--seeds", "2", "--out", str(out),
            "--report-dir", str(rep), "--no-progress", "--jobs", "2"]
    assert run_all.main(args) == 0
    rows = pd.read_csv(out / "gcn_k.csv")
    assert len(rows) == 16 and set(rows["status"]) == {"ok"}
    assert set(rows["variant"]) == {"base", "k3", "k5", "k7", "k9", "k11", "k13", "k15"}
    for col in ["mIoU", "pixel_acc", "mean_acc", "boundary_acc", "internal_acc", "params", "head_params",
                "train_img_per_s", "infer_fps", "wall_s", "device", "torch", "torchvision", "git_sha",
                "run_id", "status", "finished_at", "per_class_iou"]:
        assert col in rows, col
    report = (rep / "REPORT.md").read_text()
    assert "## GCN Table 1" in report and "| GCN k=15 | 74.50 |" in report
    assert "### Claims" in report and "MISMATCH" not in report
    assert (rep / "figures" / "gcn_k.png").stat().st_size > 0
    assert (rep / "figures" / "data_plain.png").stat().st_size > 0  # the page on what the data can test
    assert "(APPENDIX.md#gcn_k)" in report and (rep / "APPENDIX.md").exists()
    # a rerun trains nothing and writes nothing new; --report-only rebuilds the report
    assert run_all.main(args) == 0
    assert len(pd.read_csv(out / "gcn_k.csv")) == 16
    (rep / "REPORT.md").unlink()
    assert run_all.main(["--report-only", "--out", str(out), "--report-dir", str(rep)]) == 0
    assert "## GCN Table 1" in (rep / "REPORT.md").read_text()
    # without --report-dir a results folder other than the default gets its report beside it: a
    # scratch run must not overwrite the committed report/REPORT.md
    assert run_all.parse_args(["--report-only"]).report_dir == "report"
    assert run_all.parse_args(["--report-only", "--out", os.path.abspath("results")]).report_dir == "report"
    assert run_all.parse_args(["--report-only", "--out", str(out)]).report_dir == str(out / "report")
    assert run_all.main(["--report-only", "--out", str(out)]) == 0
    assert "## GCN Table 1" in (out / "report" / "REPORT.md").read_text()


@pytest.mark.parametrize("argv,message", [
    (["--ablation", "gcn_q"], "unknown ablation 'gcn_q'; choose from: gcn_k"),
    (["--ablation", "gcn_k", "--preset", "huge"], "invalid choice: 'huge'"),
    (["--ablation", "gcn_k", "--jobs", "0"], "--jobs must be >= 1"),
    (["--ablation", "gcn_k", "--device", "tpu"], "--device must be"),
    ([], "nothing to do"),
])
def test_bad_arguments_get_a_one_line_error(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_all.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_real_data_is_a_clear_error(tmp_path, capsys):
    code = run_all.main(["--ablation", "gcn_k", "--preset", "smoke", "--data", "voc", "--data-root",
                         str(tmp_path / "nowhere"), "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and err.count("\n") == 1


def test_list(capsys):
    assert run_all.main(["--list"]) == 0
    assert "gcn_k" in capsys.readouterr().out


def test_show_config_prints_each_resolved_plan_without_training(tmp_path, capsys):
    from helpers import plans_of
    assert run_all.main(["--show-config", "gcn_k", "k7", "--preset", "smoke", "--seeds", "2",
                         "--out", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    plans = [p for p in plans_of("gcn_k", seeds=2) if p.variant == "k7"]
    assert f"plan {plans[0].plan_id}" in out and "## variant k7" in out and "## variant k3" not in out
    assert f"run ids: seed 0 {plans[0].run_id}, seed 1 {plans[1].run_id}" in out
    assert f"eval id: {plans[0].eval_id}" in out
    assert '"head": "gcn", "k": 7' in out and '"iterations": 3' in out and '"threads": 1' in out
    assert not (tmp_path / "results").exists()  # nothing planned is trained or written
    # every variant, and the selection runs of a tuned ablation, with the lr still to be chosen
    assert run_all.main(["--show-config", "gcn_vs_conv", "--preset", "smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("## variant ") == 13 and "## selection run gcn_k7_tuned@0.2" in out
    assert "## variant conv_k9_tuned (lr or CRF settings to be chosen by its selection runs" in out


def test_set_lays_a_setting_over_every_variant_and_is_part_of_the_run_id(tmp_path):
    from helpers import plans_of, selection_of
    plain = {p.variant: p for p in plans_of("gcn_vs_conv")}
    faster = {p.variant: p for p in plans_of("gcn_vs_conv", sets=(("train.lr", 0.01), ("model.head_width", 4)))}
    assert {p.train["lr"] for p in faster.values()} == {0.01} and faster["conv_k3"].model["head_width"] == 4
    assert all(faster[v].run_id != plain[v].run_id for v in plain)
    # laid over the variants, under the lr a selection run scales: × 0.2 of the lr set
    assert {p.train["lr"] for p in selection_of("gcn_vs_conv", sets=(("train.lr", 0.01),))} == {0.002, 0.005, 0.01}
    seeds = plans_of("gcn_k", sets=(("seeds", [1, 2]), ("data.n_train", 8)))
    assert max(p.seed for p in seeds) == 1 and seeds[0].looks == (1, 2) and seeds[0].data["n_train"] == 8
    # end to end: the rows are the runs of the setting given
    out = tmp_path / "results"
    assert run_all.main(["--ablation", "gcn_boundary", "--preset", "smoke", "--set", "train.iterations=2",
                         "--out", str(out), "--report-dir", str(tmp_path / "report"), "--no-progress",
                         "--jobs", "1"]) == 0
    rows = pd.read_csv(out / "gcn_boundary.csv")
    assert (rows["iterations"] == 2).all() and (rows["status"] == "ok").all()


@pytest.mark.parametrize("setting, message", [
    ("train.lrr=0.1", "unknown train option(s) ['lrr']"),
    ("model.kernel=3", "unknown option model.kernel for arch 'single_head' (build_head); valid: freeze_bn, head, k"),
    ("eval.rho=0.9", "unknown evaluation options ['rho']"),
    ("optimiser.lr=0.1", "unknown section 'optimiser'"),
    ("train.lr", "expected KEY=VALUE"),
    ("seeds.n=3", "seeds takes no sub-key"),
    ("seeds=0", "seeds must be an int >= 1"),
    ("tuning.grid=[1]", "unknown tuning option(s) ['grid']"),
])
def test_a_bad_set_is_a_one_line_error_before_anything_runs(setting, message, tmp_path, capsys):
    code = run_all.main(["--ablation", "gcn_k", "--preset", "smoke", "--set", setting, "--out", str(tmp_path / "r"),
                         "--report-dir", str(tmp_path / "rep"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_list_into_a_pipe_closed_early_says_nothing_and_exits_0():
    """`run_all.py --list | head -1`: the listing ends where its reader stops, without an error line."""
    shell = f"{sys.executable} run_all.py --list | head -1"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=repo, capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("gcn_k") and out.stdout.count("\n") == 1
    assert out.stderr == "" and out.returncode == 0, out.stderr
