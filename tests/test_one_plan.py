"""A table never pools configurations: rows of another plan are left out and named."""
import json

import run_all
from engine.rows import read_rows


def test_rerun_with_other_settings_is_not_pooled_as_extra_seeds(tmp_path):
    out, rep = tmp_path / "results", tmp_path / "report"
    base = ["--ablation", "gcn_k", "--preset", "smoke", "--out", str(out), "--report-dir", str(rep),
            "--no-progress", "--jobs", "1"]
    assert run_all.main(base) == 0
    assert run_all.main(base + ["--iterations", "4"]) == 0
    rows = read_rows(out / "gcn_k.csv")
    assert len(rows) == 16 and rows["plan_id"].nunique() == 2
    # both plans have seed 0 of every variant: pooled, each variant would show n = 2
    report = (rep / "REPORT.md").read_text()
    assert "| GCN k=15 | 74.50 |" in report
    table = report.split("### Published vs reproduced")[1].split("###")[0]
    assert "(2)" not in table and table.count("(1)") == 8
    assert "8 row(s) of other settings not used: train.iterations 3 (used: 4)" in report
    # the rows carry their whole configuration
    first = rows.iloc[0]
    assert {"data_config", "model_config", "train_config", "eval_config", "threads", "cpu_capability"} <= set(rows)
    assert json.loads(first["train_config"])["threads"] == first["threads"] == 1
