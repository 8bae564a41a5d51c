"""benchmarks/train_step.py on the smoke preset, without compile (compiling is the slow part)."""
from benchmarks import train_step


def test_every_model_is_timed_in_each_mode(tmp_path):
    out = tmp_path / "table.md"
    assert train_step.main(["--preset", "smoke", "--steps", "1", "--rounds", "2", "--warmup", "1",
                            "--modes", "eager,channels_last", "--out", str(out)]) == 0
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert [r[0].strip("| ") for r in rows] == [m[0] for m in train_step.MODELS]
    for row in rows:
        eager, cl, ratio = (float(c.strip(" |")) for c in row[1:4])
        assert eager > 0 and cl > 0 and abs(ratio - eager / cl) < 0.01 + 0.03 * ratio  # cells are rounded


def test_a_mode_that_did_not_compile_is_marked_failed():
    text = train_step.table({"lc": ({"eager": 10.0}, {}, {"compile": "InductorError: x"})}, ["eager", "compile"])
    assert "| lc | 10.0 | failed | failed | failed |" in text and "- lc, compile: InductorError: x" in text
