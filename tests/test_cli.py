"""The command line, end to end on the smoke preset."""
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
    assert (rep / "figures" / "dataset.png").stat().st_size > 0
    # a rerun trains nothing and writes nothing new; --report-only rebuilds the report
    assert run_all.main(args) == 0
    assert len(pd.read_csv(out / "gcn_k.csv")) == 16
    (rep / "REPORT.md").unlink()
    assert run_all.main(["--report-only", "--out", str(out), "--report-dir", str(rep)]) == 0
    assert "## GCN Table 1" in (rep / "REPORT.md").read_text()


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
