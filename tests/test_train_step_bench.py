"""benchmarks/train_step.py on the smoke preset, without compile (compiling is the slow part)."""
from benchmarks import train_step


def test_every_model_is_timed_in_each_mode(tmp_path):
    out = tmp_path / "table.md"
    assert train_step.main(["--preset", "smoke", "--steps", "1", "--rounds", "2", "--warmup", "1",
                            "--modes", "eager,channels_last", "--out", str(out)]) == 0
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| ")][1:]
    assert [r[0].strip("| ") for r in rows] == [m[0] for m in train_step.MODELS]
    header = [h.strip("| ") for h in out.read_text().splitlines()[2].split(" | ")]
    for row in rows:
        eager, cl, ratio = (float(c.strip(" |")) for c in row[1:4])
        assert eager > 0 and cl > 0 and abs(ratio - eager / cl) < 0.01 + 0.03 * ratio  # cells are rounded
        cells = dict(zip(header, [c.strip(" |") for c in row]))
        assert float(cells["eager GFLOP/s"]) > 0 and float(cells["channels_last GFLOP/s"]) > 0


def test_achieved_gflops_are_a_steps_flops_over_its_time():
    assert train_step.gflops(2e9, 10.0) == 200.0  # 2 GFLOP in 10 ms
    text = train_step.table({"m": ({"eager": 10.0, "channels_last": 8.0}, {}, {}, {})}, ["eager", "channels_last"],
                            flops={"m": 2e9})
    assert "| m | 10.0 | 8.0 | 1.25 | 200.0 | 250.0 |" in text and "eager GFLOP/s | channels_last GFLOP/s" in text


def test_a_mode_that_did_not_compile_is_marked_failed():
    text = train_step.table({"lc": ({"eager": 10.0}, {}, {"compile": "InductorError: x"}, {})}, ["eager", "compile"])
    assert "| lc | 10.0 | failed | failed | failed |" in text and "- lc, compile: InductorError: x" in text


def test_paper_shapes_give_images_per_second_and_mfu(tmp_path):
    out = tmp_path / "paper.md"
    assert train_step.main(["--preset", "paper", "--models", "largefov_vgg16", "--batch", "2", "--crop", "64",
                            "--steps", "1", "--rounds", "1", "--warmup", "1", "--modes", "eager,bf16+cl",
                            "--peak-tflops", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "largefov_vgg16 2 × 64²" in text
    header, row = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")]
    cells = dict(zip([h.strip("| ") for h in header], [c.strip(" |") for c in row]))
    eager_ms, img_s, mfu = float(cells["eager ms"]), float(cells["eager img/s"]), float(cells["eager MFU %"])
    assert abs(img_s - 2000 / eager_ms) < 0.05 + 0.01 * img_s and mfu > 0
    assert cells["eager peak MB"] == "–"  # GPU memory only


def test_the_reference_step_keeps_the_data_its_time_was_measured_on():
    """REFERENCE_MS is of psp_pool's full module on the one-band scenes (9 classes); the quick preset's data
    may change (issue 37's grid: 17 classes), the reference step may not."""
    from data import build_dataset
    plan = train_step.reference_plan()
    assert plan.data == train_step.REFERENCE_DATA and plan.model["bins"] == [1, 2, 3, 6]
    assert build_dataset({**plan.data, "n_train": 1}, "train").num_classes == 9
