"""The committed report is rebuilt exactly from committed data: CSV rows, the analysis files saved
beside them (results/analysis/*.npz) and the ablation files; never from the run folders
(results/runs/, git-ignored: absent on a fresh clone)."""
import json
import os
import re
import shutil

import pandas as pd
import pytest
import torch

import run_all
from ablations import ABLATIONS, gcn_k, lc_threshold
from engine.analysis import analysis_file, data_analysis_file, load_analysis
from report.build import build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def figures_of(report_dir):
    """The figure files REPORT.md references (relative to report_dir)."""
    with open(os.path.join(report_dir, "REPORT.md")) as f:
        return FIGURE.findall(f.read())


def assert_same_report(a, b, byte_identical_figures=True):
    for name in ("REPORT.md", "APPENDIX.md"):
        with open(os.path.join(a, name)) as fa, open(os.path.join(b, name)) as fb:
            assert fa.read() == fb.read(), name
    figures = figures_of(a)
    assert figures
    for rel in figures:
        assert os.path.exists(os.path.join(a, rel)), rel
        assert os.path.exists(os.path.join(b, rel)), rel
        if byte_identical_figures:
            with open(os.path.join(a, rel), "rb") as fa, open(os.path.join(b, rel), "rb") as fb:
                assert fa.read() == fb.read(), f"{rel} differs between two builds from the same data"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """gcn_k and lc_threshold at the smoke preset: rows, analyses and a first report."""
    tmp = tmp_path_factory.mktemp("rebuild")
    out, first = tmp / "results", tmp / "report1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: on a busy 2-core machine a second thread only waits
    try:
        assert run_all.main(["--ablation", "gcn_k", "--ablation", "lc_threshold", "--preset", "smoke",
                             "--out", str(out), "--report-dir", str(first), "--no-progress", "--jobs", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    return tmp, out, first


def test_runs_save_their_analyses(smoke):
    _, out, _ = smoke
    rows = pd.read_csv(out / "gcn_k.csv", dtype=str)
    for _, row in rows.iterrows():
        path = analysis_file(str(out), row["run_id"], row["eval_id"], "erf")
        assert os.path.exists(path) == (row["variant"] in gcn_k.ERF_VARIANTS), row["variant"]
        if row["variant"] in gcn_k.ERF_VARIANTS:
            data = load_analysis(path)
            assert data["erf"].shape == (64, 64) and data["erf"].dtype == "float32" and data["erf"].max() > 0
            assert int(data["n_images"]) == 8  # the smoke preset's whole val set (< 64 images)
    rows = pd.read_csv(out / "lc_threshold.csv", dtype=str)
    lc = rows[rows["variant"] == lc_threshold.REPORT_SECTIONS["lc_stages"]["variant"]].iloc[0]
    data = load_analysis(analysis_file(str(out), lc["run_id"], lc["eval_id"], "stages"))
    assert data["image"].shape == (6, 64, 64, 3) and data["image"].dtype == "uint8"
    for key in ("label", "prediction", "stage"):
        assert data[key].shape == (6, 64, 64) and data[key].dtype == "uint8", key
    assert set(data["stage"].ravel().tolist()) <= {1, 2, 3}
    assert float(data["rho"]) == 0.985
    dsn = rows[rows["variant"] == "r1"].iloc[0]  # the DSN row keeps the probe of the mechanism
    probe = load_analysis(analysis_file(str(out), dsn["run_id"], dsn["eval_id"], "stage_probe"))
    assert probe["acc"].shape == (2, 2, 3) and list(probe["rhos"]) == [0.8, 0.985]
    # only the variants that list an analysis of their trained model have one, but every run's "heldout"
    # (an every-plan analysis: issue 37's probes read it); and each dataset its preview
    names = os.listdir(out / "analysis")
    heldout = [n for n in names if n.endswith("-heldout.npz")]
    evaluations = sum(len(pd.read_csv(out / f"{name}.csv", dtype=str).drop_duplicates(["run_id", "eval_id"]))
                      for name in ("gcn_k", "lc_threshold"))
    assert len(heldout) == evaluations
    # erf of gcn_k's ERF_VARIANTS; lc_threshold's stages (ρ = 0.985) and its DSN's stage_probe and
    # heldout_stage_probe (the cascade probes' held-out twin)
    assert len([n for n in names if not n.startswith("data-") and n not in heldout]) == len(gcn_k.ERF_VARIANTS) + 3
    assert sorted(n for n in names if n.startswith("data-")) == sorted(
        os.path.basename(data_analysis_file(str(out), json.loads(rows.iloc[0]["data_config"]), "preview"))
        for rows in (pd.read_csv(out / f"{name}.csv", dtype=str) for name in ("gcn_k", "lc_threshold")))


def test_report_rebuilds_identically_without_the_run_folders(smoke):
    tmp, out, first = smoke
    text = (first / "REPORT.md").read_text()
    assert "figures/gcn_k_erf.png" in text and "figures/lc_threshold_stages.png" in text
    shutil.rmtree(out / "runs")  # as on a fresh clone: no checkpoints, no model files
    second = tmp / "report2"
    build(str(out), str(second))
    assert_same_report(str(first), str(second))
    assert sorted(os.listdir(second / "figures")) == sorted(os.path.basename(f) for f in figures_of(str(second)))


def test_a_missing_analysis_file_is_one_line_not_a_crash(smoke):
    tmp, out, _ = smoke
    partial = tmp / "results_partial"
    shutil.copytree(out, partial, ignore=shutil.ignore_patterns("runs"))
    for name in os.listdir(partial / "analysis"):
        os.remove(partial / "analysis" / name)
    build(str(partial), str(tmp / "report3"))
    text = (tmp / "report3" / "REPORT.md").read_text()
    assert "Not drawn: no stage data for `r0985` seed 0" in text
    assert "GCN k=3: no ERF data" in text
    assert "gcn_k_erf.png" not in text and "lc_threshold_stages.png" not in text


def committed_csvs():
    return [os.path.join(REPO, "results", f"{name}.csv") for name in ABLATIONS
            if os.path.exists(os.path.join(REPO, "results", f"{name}.csv"))]


def test_committed_report_is_rebuilt_from_committed_results(tmp_path, monkeypatch):
    """CI: report/REPORT.md is exactly what the committed results/ give (figures: present; their
    bytes are compared in the test above, on one machine, since fonts and matplotlib versions differ
    between machines)."""
    csvs = committed_csvs()
    old = [os.path.basename(p) for p in csvs if "plan_id" not in pd.read_csv(p, nrows=0).columns]
    if old:
        pytest.skip(f"the committed {', '.join(old)} predate the configuration columns (no plan_id): the "
                    "report cannot be rebuilt from them until the results are regenerated")
    monkeypatch.chdir(REPO)  # REPORT.md names the results folder as given: 'results'
    build("results", str(tmp_path))
    assert_same_report(os.path.join(REPO, "report"), str(tmp_path), byte_identical_figures=False)
