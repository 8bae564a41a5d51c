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


def test_the_data_page_gives_each_data_configuration_its_tables_epochs_and_widths(tmp_path):
    import json

    import pandas as pd

    from report.data_page import data_page

    def rows(data, iterations, batch, widths, head=None):
        model = {"backbone": {"widths": widths}, **({"head_width": head} if head else {})}
        return pd.DataFrame({"dataset": ["synthetic"], "data_config": [json.dumps(data)],
                             "model_config": [json.dumps(model)], "iterations": [iterations], "batch_size": [batch]})
    plain = {"name": "synthetic", "image_size": 128, "n_train": 2000, "n_val": 300}
    results = {"a": rows(plain, 800, 8, [24, 64]), "b": rows({**plain, "context": True}, 400, 16, [32, 64], 64)}
    specs = [types.SimpleNamespace(name=n) for n in results]
    page = data_page(results, specs, lambda r: (r, []), str(tmp_path), str(tmp_path), "figures")
    assert "| **plain scenes** (" in page and "`a`: 800 × 8 (3.2 epochs), 64 ch |" in page
    assert "| **context scenes** (" in page and "`b`: 400 × 16 (3.2 epochs), 64 ch → 64 |" in page
    assert "0.22–0.4 of the image (1.8×)" in page  # the plain mode's object radius, the scale range
    assert page.count("is not drawn: its \"preview\" analysis is not in") == 2  # no analysis files here


def test_the_notes_beside_an_ablation_file_go_to_the_appendix_below_its_headings(tmp_path):
    from report.appendix import read_notes
    (tmp_path / "mine.md").write_text("# mine: probe histories\n\nWhy.\n\n## A probe\n\nIts numbers.\n")
    notes = read_notes(types.SimpleNamespace(path=str(tmp_path / "mine.py")))
    assert notes == "Why.\n\n#### A probe\n\nIts numbers."
    assert read_notes(types.SimpleNamespace(path=str(tmp_path / "none.py"))) is None


def test_the_data_page_names_each_configuration_by_its_knobs_and_its_classes():
    from report.data_page import can_and_cannot, config_name, figure_name
    plain = {"name": "synthetic", "image_size": 128, "n_train": 2000, "n_val": 300}
    scaled = {**plain, "log_radius": True, "radius": [0.03, 0.3], "resize": [0.5, 2.0]}
    assert config_name(plain) == "plain scenes"
    assert config_name(scaled) == "plain scenes, log_radius true, resize [0.5, 2.0]"
    assert config_name({**plain, "classes": 4}) == "plain scenes"  # a knob at its default is not named
    assert figure_name(plain) == "data_plain.png"  # today's figure keeps its file
    assert figure_name(scaled).startswith("data_plain_") and figure_name(scaled) != figure_name({**scaled, "resize": None})
    assert "(5 or 21 classes at 128 px" in can_and_cannot([21, 5, 5])


def test_the_data_pages_knob_defaults_are_the_generators():
    import dataclasses

    from data.scene_knobs import DEFAULT_KNOBS
    from report.data_page import KNOB_DEFAULTS
    assert KNOB_DEFAULTS == dataclasses.asdict(DEFAULT_KNOBS)
