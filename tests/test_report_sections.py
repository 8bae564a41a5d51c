"""The paper-specific report sections: ablation files name them as data (REPORT_SECTIONS), the report
dispatches them; speed-ups are paired by seed."""
import ast
import os
import types

import pandas as pd
import pytest

from ablations import ABLATIONS, load
from report.lc_sections import speedup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# what each section reads from the analysis files, so the variants it draws must list that analysis
NEEDS = {"erf": "erf", "lc_stages": "stages"}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_report_sections_are_data_naming_known_sections(name):
    from report.build import SECTIONS, check_sections
    spec = check_sections(load(name))
    sections = spec.report_sections
    assert isinstance(sections, dict) and all(isinstance(v, dict) for v in sections.values())
    assert set(sections) <= set(SECTIONS)
    ids = {v["id"]: v for v in spec.variants}
    for section, kwargs in sections.items():
        need = NEEDS.get(section)
        for vid in kwargs.get("variants", []) + ([kwargs["variant"]] if "variant" in kwargs else []):
            assert vid in ids, (section, vid)
            if need:
                assert need in ids[vid].get("analyses", []), (section, vid)


def test_no_report_code_in_ablations_and_no_engine_in_report():
    """The flow is one way: ablation files import no report code; the report does not plan, train or
    run anything, and builds no dataset or network (it reads rows, analyses and ablation files)."""
    report_banned = ("engine.plans", "engine.one_ablation", "engine.workers", "engine.one_run", "engine.trainer", "data",
                     "segmodels", "torch")
    for folder, banned in (("ablations", ("report",)), ("report", report_banned)):
        for name in os.listdir(os.path.join(REPO, folder)):
            if not name.endswith(".py"):
                continue
            tree = ast.parse(open(os.path.join(REPO, folder, name)).read())
            imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
            imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
            for module in imported:
                for b in banned:
                    assert module != b and not module.startswith(b + "."), f"{folder}/{name} imports {module}"
    for name in os.listdir(os.path.join(REPO, "ablations")):
        if name.endswith(".py"):
            assert "matplotlib" not in open(os.path.join(REPO, "ablations", name)).read(), name


def test_speedups_pair_rows_by_seed_not_by_row_order():
    # r1's rows were written in seed order 1, 0, 2; r08's in 0, 1, 2 (and one r08 row failed)
    rows = pd.DataFrame({
        "variant": ["r1", "r1", "r1", "r08", "r08", "r08", "r08"],
        "seed": [1, 0, 2, 0, 1, 2, 3],
        "status": ["ok"] * 6 + ["failed: non-finite loss"],
        "infer_ms": [20.0, 10.0, 30.0, 5.0, 10.0, 10.0, 1.0],
    })
    assert speedup(rows, "r1", "r08") == {0: 2.0, 1: 2.0, 2: 3.0}
    assert speedup(rows, "r1", "missing") == {}
    assert speedup(rows.drop(columns="infer_ms"), "r1", "r08") == {}


def test_every_undecided_claim_says_why():
    """why_undecided: a variant that never trained, a difference out of reach or beyond the design's
    seeds, a run budget spent before the next look, the design's maximum reached."""
    import math

    from engine.claims import Greater, Outcome, Verdict
    from report.build import why_undecided
    rows = pd.DataFrame({"variant": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "seed": [0, 1, 2] * 3,
                         "status": ["ok"] * 6 + ["diverged"] * 3, "preset": "quick", "seed_looks": "[3, 5, 8]"})
    spec = types.SimpleNamespace(max_runs={"quick": 10})
    ab, ac = Greater("", "mIoU", a="a", b="b"), Greater("", "mIoU", a="a", b="c")

    def why(claim, n, need, spec=spec):
        return why_undecided(spec, rows, Verdict(claim, Outcome.INCONCLUSIVE, "", 1, n, 3, need))
    assert why(ac, 3, math.inf) == "every run of c failed, so there is nothing to compare"
    assert "no difference in reach" in why(ab, 3, math.inf)
    assert "about 20 seeds per variant, more than the design's 8" in why(ab, 3, 20)
    assert "within the design's 8, but the run budget (10 runs) was spent" in why(ab, 3, 5)
    # no budget to stop it: the design would ask for look 2 now (a and b to 5 seeds: 4 runs), not in the rows
    assert why(ab, 3, 5, types.SimpleNamespace(max_runs={})).startswith("needs look 2 (5 seeds per variant: about 4 more")
    assert why(ab, 8, 5).startswith("at the design's 8 seeds")


def test_standins_section_reads_each_variants_card_and_checks_its_hash(tmp_path):
    """GCN Table 6's first row: the stand-in each variant started from, its held-out errors from its card."""
    from report.standins import standins_section
    spec = load("gcn_backbone")
    card = {"name": "small_resnet-0000000000", "sha256": "ab" * 32, "held_out_accuracy": 97.25,
            "held_out_top5_error": 0.5, "chance_accuracy": 1.56}
    (tmp_path / "small_resnet-0000000000.json").write_text(__import__("json").dumps(card))
    rows = pd.DataFrame({"variant": ["resnet_base", "resnet_base", "resnetgcn_base"],
                         "weights": ["fractal:small_resnet-0000000000:" + "ab" * 6] * 2 + ["none"]})
    line, text = standins_section(spec, rows, "", "", "", variants=["resnet_base", "resnetgcn_base"],
                                  published={"resnet_base": 7.7, "resnetgcn_base": 7.9}, weights_dir=str(tmp_path))
    # the section's line (the range of the stand-ins' errors), the table for the appendix
    assert line.startswith("**The backbones as classifiers**: the stand-ins' held-out top-1 error 2.75–2.75 %")
    assert "| ResNet, 1×1 head | 7.7 | 2.75 | 0.50 | 1.56 | `small_resnet-0000000000` |" in text
    assert "| ResNet-GCN, 1×1 head | 7.9 | — | — | — | from scratch at this preset: no stand-in |" in text
    rows["weights"] = "fractal:small_resnet-0000000000:" + "cd" * 6
    with pytest.raises(ValueError, match="the rows are of other weights"):
        standins_section(spec, rows, "", "", "", variants=["resnet_base"], published={"resnet_base": 7.7},
                         weights_dir=str(tmp_path))


def test_standins_section_without_a_published_error_shows_the_colour_targets_accuracy(tmp_path):
    """psp_depth's ladder: each rung's colour-keeping stand-in, its top-1 error and colour accuracy, no paper column."""
    from report.standins import standins_section
    spec = load("psp_depth")
    card = {"name": "small-0000000000-colour", "sha256": "ef" * 32, "held_out_accuracy": 93.59,
            "held_out_top5_error": 1.0, "held_out_colour_accuracy": 93.2, "chance_accuracy": 1.56}
    (tmp_path / "small-0000000000-colour.json").write_text(__import__("json").dumps(card))
    rows = pd.DataFrame({"variant": ["r269_ss"], "weights": ["fractal:small-0000000000-colour:" + "ef" * 6]})
    line, text = standins_section(spec, rows, "", "", "", variants=["r269_ss"], weights_dir=str(tmp_path))
    assert "6.41–6.41 %" in line and "beside the paper" not in line
    label = spec.variant("r269_ss")["label"]
    assert f"| {label} | 6.41 | 93.20 | 1.56 | `small-0000000000-colour` |" in text
    assert "paper: ImageNet" not in text and "(the paper's first row)" not in text
