"""Ablation files are data, checked when they are loaded: every name they use (variants in claims,
published numbers, report sections; metrics; analyses; presets) must exist, and a mistake is one line
naming the file and the key — at `run_all.py --list` already."""
import pytest

import ablations
import run_all
from ablations import ABLATIONS, load
from engine.claims import Assertion, Best, Close, Greater, Increasing
from engine.spec import DEFAULT_BANDS, from_module
from helpers import ablation_file


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_ablation_file_loads_as_a_checked_record(name):
    spec = load(name)
    assert spec.name == name and spec.claims and spec.variants
    ids = set(spec.variant_ids)
    for claim in spec.claims:
        assert set(claim.variants()) <= ids
    # one suite default for the equivalence bands: ±2 mIoU, ±1 point of a per-pixel accuracy
    assert spec.bands["mIoU"] == DEFAULT_BANDS["mIoU"] == 2.0
    assert spec.bands["boundary_acc"] == spec.bands["internal_acc"] == 1.0
    assert "infer_ms" not in spec.bands and "stage1_pct" not in spec.bands
    assert spec.deviations["synthetic"]  # every paper's table lists its deviations, from the .md beside it


K3 = Greater("k3 beats the base", "mIoU", a="k3", b="base")
MISTAKES = [
    ({"CLAIMS": [K3], "ASSERTIONS": [Assertion("x", "T1", [K3]), Assertion("y", "T1", [K3])]},
     r"ASSERTIONS\[1\]: CLAIMS\[0\] is already in ASSERTIONS\[0\]"),
    ({"CLAIMS": [K3], "ASSERTIONS": [Assertion("x", "T1", [Greater("k3 > base", "mIoU", a="k3", b="base")])]},
     r"ASSERTIONS\[0\]: its claim 'k3 > base' is not one of CLAIMS"),
    ({"ASSERTIONS": ["k3 beats the base"]}, r"ASSERTIONS\[0\]: not an engine.claims.Assertion: str"),
    ({"CLAIMS": [Greater("k3 beats the base", "mIoU", a="k33", b="base")]},
     r"ablations/tiny.py: CLAIMS\[0\]: unknown variant id\(s\) 'k33'; variants: base, k3"),
    ({"CLAIMS": [Increasing("rises", "mIoU", order=["base", "k5"], x=[1, 5])]}, r"CLAIMS\[0\]: unknown variant id\(s\) 'k5'"),
    ({"CLAIMS": [Best("best", "mIoU", expected="k3", candidates=["base", "k3", "k7"])]}, r"'k7'"),
    ({"CLAIMS": [Greater("", "miou", a="k3", b="base")]}, r"CLAIMS\[0\]: unknown metric\(s\) 'miou'"),
    ({"CLAIMS": [Greater("", "mIoU", minus="boundary", a="k3", b="base")]}, r"unknown metric\(s\) 'boundary'"),
    ({"CLAIMS": [Close("", "mIoU", a="k3", b="base", band=0.0)]}, r"CLAIMS\[0\]: band must be > 0"),
    ({"CLAIMS": [{"test": "greater", "metric": "mIoU", "a": "k3", "b": "base"}]}, r"CLAIMS\[0\]: not a claim object"),
    ({"PUBLISHED": {"k5": {"mIoU": 70.0}}}, r"PUBLISHED: unknown variant id\(s\) 'k5'"),
    ({"PUBLISHED": {"k3": {"mIou": 70.0}}}, r"PUBLISHED\['k3'\]: unknown metric\(s\) 'mIou'"),
    ({"METRICS": ["mIoU", "speed"]}, r"METRICS: unknown metric\(s\) 'speed'"),
    ({"VARIANTS": [{"id": "a"}, {"id": "a"}]}, r"VARIANTS\[1\] \('a'\): duplicate variant id 'a'"),
    ({"VARIANTS": [{"id": "a", "modle": {}}]}, r"VARIANTS\[0\] \('a'\): unknown key\(s\) \['modle'\]"),
    ({"VARIANTS": [{"id": "a", "analyses": ["erff"]}]}, r"VARIANTS\[0\] \('a'\)\['analyses'\]: unknown analysis"),
    ({"VARIANTS": [{"id": "a", "presets": ["quik"]}]}, r"\['presets'\]: unknown preset\(s\) \['quik'\]"),
    ({"VARIANTS": [{"label": "no id"}]}, r"VARIANTS\[0\]: needs an 'id'"),
    ({"VARIANTS": [{"id": "a", "init_from": "b"}]}, r"VARIANTS\[0\] \('a'\): init_from 'b' must name another variant"),
    ({"VARIANTS": [{"id": "a", "init_from": "b"}, {"id": "b", "init_from": "a"}]}, r"\('a'\): init_from 'b'"),
    ({"BANDS": {"mIoU": -1}}, r"BANDS\['mIoU'\]: must be a number > 0"),
    ({"MAX_RUNS": {"smoke": 0}}, r"MAX_RUNS\['smoke'\]: must be a whole number >= 1, got 0"),
    ({"MAX_RUNS": {"fast": 3}}, r"MAX_RUNS: unknown preset\(s\) \['fast'\]"),
    ({"PRESETS": {"fast": {}}}, r"PRESETS: unknown preset\(s\) \['fast'\]"),
    ({"DEVIATIONS": {"synthetic": []}}, r"DEVIATIONS: write them in ablations/tiny.md, a '## Deviations: synthetic'"),
    ({"NAME": "other"}, r"NAME: 'other' is not the file's name"),
]


@pytest.mark.parametrize("attrs, message", MISTAKES, ids=[m for _, m in MISTAKES])
def test_a_mistake_in_an_ablation_file_is_one_line_naming_the_file_and_the_key(attrs, message):
    with pytest.raises(ValueError, match=message) as err:
        from_module(ablation_file("tiny", **attrs))
    assert "\n" not in str(err.value) and str(err.value).startswith("ablations/tiny.py: ")


@pytest.mark.parametrize("sections, message", [
    ({"erff": {}}, r"REPORT_SECTIONS: unknown section 'erff'; known: .*erf"),
    ({"erf": {"variants": ["k3", "k9"]}}, r"REPORT_SECTIONS\['erf'\]\['variants'\]: .*'k9'")])
def test_a_report_section_unknown_to_the_report_is_one_line(sections, message):
    from report.build import check_sections
    with pytest.raises(ValueError, match=message) as err:
        check_sections(from_module(ablation_file("tiny", REPORT_SECTIONS=sections)))
    assert "\n" not in str(err.value) and str(err.value).startswith("ablations/tiny.py: ")


NOTES = """# tiny: probe histories

Why.

## Deviations: synthetic

- Own one.
- (from shared.md: synthetic 2, 1)
- A long one
  over two lines.

## A probe

Its numbers.

## Deviations: voc

- (from tiny.md: synthetic 1-2)
- (from shared.md: real)
"""
SHARED = "# shared\n\n## Deviations: synthetic\n\n- First shared.\n- Second shared.\n\n## Deviations: real\n\n- Real.\n"


def test_deviations_are_read_from_the_markdown_beside_the_file_with_their_includes(tmp_path):
    """Each '## Deviations: <key>' section's bullets, a '(from x.md: key [items])' bullet standing for that
    section's (items numbered from 1, in the order asked); the rest of the file is the appendix's notes."""
    from engine.notes import notes_text
    (tmp_path / "ablations").mkdir()
    (tmp_path / "ablations" / "tiny.md").write_text(NOTES)
    (tmp_path / "ablations" / "shared.md").write_text(SHARED)
    module = ablation_file("tiny")
    module.__file__ = str(tmp_path / "ablations" / "tiny.py")
    spec = from_module(module)
    assert spec.deviations == {"synthetic": ["Own one.", "Second shared.", "First shared.", "A long one over two lines."],
                               "voc": ["Own one.", "Second shared.", "Real."]}
    assert notes_text(str(tmp_path / "ablations" / "tiny.md")) == "# tiny: probe histories\n\nWhy.\n\n## A probe\n\nIts numbers.\n"
    assert from_module(ablation_file("tiny")).deviations == {}  # no .md beside it: none


BAD_NOTES = [
    ("## Deviations: synthtic\n\n- x\n", r"tiny.md line 1: '## Deviations: synthtic': write '## Deviations: <key>', "
                                           r"key one of synthetic, real, voc"),
    ("## Deviations\n\n- x\n", r"tiny.md line 1: '## Deviations': write"),
    ("## Deviations: voc\n\nprose\n", r"tiny.md line 3: not a bullet \('- ' and the deviation\): 'prose'"),
    ("## Deviations: voc\n\n- x\n\n## Deviations: voc\n\n- y\n", r"tiny.md line 5: a second '## Deviations: voc'"),
    ("## Deviations: voc\n\n## Notes\n", r"tiny.md: '## Deviations: voc' lists no deviation"),
    ("## Deviations: voc\n\n- (from gone.md: voc)\n", r"tiny.md line 3: '\(from gone.md: voc\)': no file ablations/gone.md"),
    ("## Deviations: voc\n\n- (from shared.md: voc)\n", r"line 3: .*: shared.md has no '## Deviations: voc' section"),
    ("## Deviations: voc\n\n- (from shared.md: synthetic 2-3)\n", r"line 3: .*: items must lie in 1-2"),
    ("## Deviations: voc\n\n- (from shared.md synthetic)\n", r"line 3: .*: write '\(from <name>.md: <key>\)'"),
    ("## Deviations: voc\n\n- (from tiny.md: real)\n\n## Deviations: real\n\n- (from tiny.md: voc)\n",
     r"tiny.md line 7: '\(from tiny.md: voc\)': includes itself"),
]


@pytest.mark.parametrize("text, message", BAD_NOTES, ids=[m for _, m in BAD_NOTES])
def test_a_malformed_deviations_section_is_one_line_naming_the_file_and_line(tmp_path, text, message):
    from engine.notes import read_deviations
    (tmp_path / "tiny.md").write_text(text)
    (tmp_path / "shared.md").write_text(SHARED)
    with pytest.raises(ValueError, match=message) as err:
        read_deviations(str(tmp_path / "tiny.md"), "ablations/tiny.md")
    assert "\n" not in str(err.value) and str(err.value).startswith("ablations/tiny.md")


def test_ablation_files_are_found_in_the_folder_in_their_order(tmp_path):
    """No list to edit: every file that sets NAME is an ablation, even one that does not parse; ORDER
    places it, a file without ORDER comes after, by name; a shared helper (no NAME) is none."""
    files = {"b_own.py": 'NAME = "b_own"\n', "a_own.py": 'NAME = "a_own"\n', "second.py": 'NAME = "second"\nORDER = 20\n',
             "broken.py": 'NAME = "broken"\nORDER = 10\ndef (:\n', "shared.py": 'PAPER = "x"\n', "_private.py": 'NAME = "p"\n'}
    for file, text in files.items():
        (tmp_path / file).write_text(text)
    assert ablations.ablation_files(str(tmp_path)) == ("broken", "second", "a_own", "b_own")
    assert ablations.NAMES[:2] == ("gcn_k", "gcn_vs_conv") and ablations.NAMES[-1] == "deeplab_crf"


def test_a_misspelt_claim_variant_fails_at_list_already(monkeypatch, capsys):
    module = ablation_file("gcn_k", **{k: getattr(ablations.gcn_k, k) for k in ("VARIANTS", "PUBLISHED", "MODEL")},
                           CLAIMS=[Greater("GCN k = 15 beats the base", "mIoU", a="k51", b="base")])
    monkeypatch.setitem(ABLATIONS, "gcn_k", module)
    ablations._checked.cache_clear()
    try:
        assert run_all.main(["--list"]) == 2
        err = capsys.readouterr().err
        assert err == ("run_all.py: error: ablations/gcn_k.py: CLAIMS[0]: unknown variant id(s) 'k51'; variants: "
                       "base, k3, k5, k7, k9, k11, k13, k15\n")
    finally:
        ablations._checked.cache_clear()


def test_the_readmes_own_ablation_runs_and_is_judged(tmp_path):
    """README's "Add your own ablation", with a GCN head standing in for "mine": loads, trains at the
    smoke preset, and its claim gets a verdict in the report."""
    from engine.design import claim_verdicts
    from engine.rows import read_rows
    from helpers import run
    from report.build import build
    module = ablation_file("my_head", TITLE="My head vs a 1×1 conv", PAPER="(mine)", SOURCE="no published numbers",
                           MODEL={"arch": "single_head"},
                           VARIANTS=[{"id": "base", "label": "1×1 conv", "model": {"head": "conv1x1"}},
                                     {"id": "mine", "label": "my head", "model": {"head": "gcn", "k": 3}}],
                           CLAIMS=[Greater("my head beats the 1×1 conv", "mIoU", a="mine", b="base")])
    spec = from_module(module)
    assert run(spec, tmp_path / "results", seeds=2) == 4
    (verdict,) = claim_verdicts(spec, read_rows(str(tmp_path / "results" / "my_head.csv")))
    assert verdict.outcome in ("reproduced", "contradicted", "absent", "inconclusive") and verdict.statistic
    build(str(tmp_path / "results"), str(tmp_path / "report"), [spec])
    assert "my head beats the 1×1 conv" in (tmp_path / "report" / "REPORT.md").read_text()


def test_same_rows_finds_a_number_that_moved(tmp_path, capsys):
    import pandas as pd

    from probes.same_rows import main
    rows = pd.DataFrame({"variant": ["a", "b"], "seed": [0, 0], "run_id": ["r1", "r2"], "eval_id": ["e", "e"],
                         "mIoU": [50.0, 60.0], "wall_s": [1.0, 2.0]})
    for name, change in (("a", {}), ("b", {"wall_s": [9.0, 9.0]}), ("c", {"mIoU": [50.0, 60.5]})):
        (tmp_path / name).mkdir()
        rows.assign(**change).to_csv(tmp_path / name / "t.csv", index=False)
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0  # a timing is not a number that moved
    assert main([str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    assert "t.csv b seed 0: mIoU '60.0' vs '60.5'" in capsys.readouterr().out
