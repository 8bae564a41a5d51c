"""The report reads in ten minutes: REPORT.md under 80 KB with its appendix linked, each deviation
listed once, and figures that join only a swept quantity with lines."""
import os
import re
import types

import pytest

from ablations import load
from report.appendix import APPENDIX
from report.build import Listed, deviations_text
from report.overview import anchor
from report.table_figure import categories, is_sweep, one_step_apart, shared_words

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_REPORT_BYTES = 80 * 1024


def committed(name):
    with open(os.path.join(REPO, "report", name), encoding="utf-8") as f:
        return f.read()


def test_committed_report_is_under_80_kb_and_links_its_appendix():
    report = committed("REPORT.md")
    assert len(report.encode()) < MAX_REPORT_BYTES, f"REPORT.md is {len(report.encode()):,} bytes"
    appendix = committed(APPENDIX)
    headings = set(re.findall(r"^## (.+)$", appendix, re.M))
    sections = re.findall(r"^## (.+ \(`(\w+)`\))$", report, re.M)
    assert sections
    for heading, name in sections:  # every table's section links to its part, under the same heading
        assert heading in headings, name
        assert f"({APPENDIX}#{anchor(load(name))})" in report, name


def spec(name, deviations):
    return types.SimpleNamespace(name=name, title=name.upper(), deviations={"synthetic": deviations})


def test_a_deviation_two_tables_share_is_listed_once_and_linked_from_the_second():
    listed = Listed()
    first = deviations_text(spec("a", ["shared one", "own of a"]), "synthetic", listed)
    second = deviations_text(spec("b", ["shared one", "own of b"]), "synthetic", listed)
    assert first == "- shared one\n- own of a"
    assert second == "- own of b\n- and 1 listed under [`a`](#a)"


def test_only_variants_one_swept_quantity_apart_are_joined():
    cascade = {"schedule": "cascade", "train_rho": 0.985}
    at = lambda rho, model=cascade, **more: {"x": rho, "model": model, "eval": {"rho": rho}, **more}  # noqa: E731
    assert one_step_apart(at(0.985), at(0.97))  # one trained model read at two ρ
    assert not one_step_apart(at(0.8, {**cascade, "train_rho": 0.8}), at(0.9))  # ρ = 0.8's own model
    assert not one_step_apart(at(1.0, {"schedule": "deep"}), at(0.995))  # DSN: another model
    k = lambda n: {"x": n, "model": {"head": "gcn", "k": n}}  # noqa: E731
    assert one_step_apart(k(3), k(5))
    assert not one_step_apart({"x": 1, "model": {"head": "conv1x1"}}, k(3))
    same = {"head": "psp"}  # the same model with and without multi-scale testing: not a sweep of x
    assert not one_step_apart({"x": 5, "model": same}, {"x": 6, "model": same, "eval": {"scales": [0.5, 1]}})


@pytest.mark.parametrize("name, sweep", [("gcn_k", True), ("lc_threshold", True), ("psp_aux", True),
                                         ("psp_pool", False), ("psp_chain", False), ("deeplab_crf", False),
                                         ("psp_depth", False)])
def test_categories_are_never_drawn_as_a_sweep(name, sweep):
    assert is_sweep(load(name).variants) == sweep


def test_categories_are_named_by_what_their_members_share_and_the_cpu_trunk_by_its_own_name():
    assert shared_words(["DeepLab-MSc", "DeepLab-MSc + CRF"]) == "DeepLab-MSc"
    assert shared_words(["ResNet50 SS (CPU: convs [1, 2])", "ResNet50 MS (CPU: convs [1, 2])"]) == \
        "ResNet50 (CPU: convs [1, 2])"
    (published, reproduced, members), = categories([{"id": "a", "label": "ResNet50 SS (CPU: convs [1, 2])", "x": 50},
                                                     {"id": "b", "label": "ResNet50 MS (CPU: convs [1, 2])", "x": 50}])
    assert (published, reproduced, len(members)) == ("ResNet50", "convs [1, 2]", 2)
