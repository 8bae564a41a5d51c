"""Bad input on the command line: one line `run_all.py: [<ablation>: ]error: ...` on stderr, exit code
2, nothing in the results or report folders lost or overwritten, and the error before any training."""
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import run_all
from ablations import load_all
from helpers import plans_of, settings_of
from data import build_dataset
from data.ade20k import ADE20K
from data.cityscapes import Cityscapes
from data.synthetic import SyntheticScenes
from data.voc import VOCSegmentation
from test_real_data import H, W, label_array, make_ade, make_cityscapes, make_voc, write_gray_png, \
    write_palette_png

SMOKE = ["--preset", "smoke", "--no-progress", "--jobs", "1"]


def run_cli(argv, capsys):
    """(exit code, stderr) of run_all.main; argparse's errors exit through SystemExit."""
    try:
        code = run_all.main(argv)
    except SystemExit as end:
        code = end.code
    return code, capsys.readouterr().err


def one_line_error(code, err, *needles):
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("run_all.py: ") and ": error: " in err, err
    assert "Traceback" not in err
    for needle in needles:
        assert str(needle) in err, (needle, err)


def snapshot(folder):
    """{relative path: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def trained_files(out):
    return [p for p in out.rglob("*") if p.name in ("ckpt.pt", "model.pt")]


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """A results folder and report of a real smoke run of gcn_boundary (4 variants, 1 seed)."""
    base = tmp_path_factory.mktemp("smoke")
    assert run_all.main(["--ablation", "gcn_boundary", *SMOKE, "--out", str(base / "results"),
                         "--report-dir", str(base / "report")]) == 0
    shutil.rmtree(base / "results" / "runs")  # the CSV is what these tests damage
    return base


@pytest.fixture
def results_copy(smoke_results, tmp_path):
    shutil.copytree(smoke_results / "results", tmp_path / "results")
    shutil.copytree(smoke_results / "report", tmp_path / "report")
    return tmp_path / "results", tmp_path / "report"


# ---------------------------------------------------------------- 1. --data-root without --data

def test_data_root_without_data(tmp_path, capsys):
    out = tmp_path / "results"
    code, err = run_cli(["--ablation", "gcn_k", *SMOKE, "--data-root", str(tmp_path), "--out", str(out),
                         "--report-dir", str(tmp_path / "report")], capsys)
    one_line_error(code, err, "gcn_k: error: --data-root given", "--data voc")
    assert not out.exists() and not (tmp_path / "report").exists()


# ---------------------------------------------------------------- 2. --report-only without results

def test_report_only_with_a_missing_results_folder_keeps_the_report(tmp_path, capsys):
    report = tmp_path / "report"
    report.mkdir()
    (report / "REPORT.md").write_text("the previous report\n")
    missing = tmp_path / "MISSING"
    code, err = run_cli(["--report-only", "--out", str(missing), "--report-dir", str(report)], capsys)
    one_line_error(code, err, f"results folder {missing} not found")
    assert not missing.exists()
    # a results folder without any ablation CSV does not wipe the report either
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "other_benchmark.csv").write_text("a,b\n1,2\n")
    code, err = run_cli(["--report-only", "--out", str(tmp_path / "empty"), "--report-dir", str(report)], capsys)
    one_line_error(code, err, f"no results in {tmp_path / 'empty'}", "nothing to report")
    assert snapshot(report) == {"REPORT.md": b"the previous report\n"}


# ---------------------------------------------------------------- 3. --weights

def test_weights_with_the_small_backbone_makes_no_run_folder(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    torch.save({}, weights)
    out = tmp_path / "results"
    code, err = run_cli(["--ablation", "gcn_k", *SMOKE, "--weights", str(weights), "--out", str(out)], capsys)
    one_line_error(code, err, "gcn_k: error: --weights given", "--preset paper")
    assert not out.exists()


def test_missing_weights_file_makes_no_run_folder(tmp_path, capsys):
    out = tmp_path / "results"
    code, err = run_cli(["--ablation", "gcn_k", "--preset", "paper", "--no-progress", "--weights",
                         str(tmp_path / "nowhere.pt"), "--out", str(out)], capsys)
    one_line_error(code, err, f"weights file not found: {tmp_path / 'nowhere.pt'}")
    assert not out.exists()


# ---------------------------------------------------------------- 4. output folders

@pytest.mark.parametrize("flag", ["--out", "--report-dir"])
@pytest.mark.parametrize("under", ["somefile/results", "somefile"])
def test_output_folder_that_cannot_be_made(flag, under, tmp_path, capsys):
    (tmp_path / "somefile").write_text("a file, not a folder\n")
    argv = ["--ablation", "gcn_k", *SMOKE, "--out", str(tmp_path / "results"),
            "--report-dir", str(tmp_path / "report")]
    argv[argv.index(flag) + 1] = str(tmp_path / under)
    code, err = run_cli(argv, capsys)
    one_line_error(code, err, f"{flag} {tmp_path / under}: cannot be a folder, {tmp_path / 'somefile'} is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]  # nothing made, nothing trained


def test_report_dir_under_a_file_with_report_only(smoke_results, tmp_path, capsys):
    (tmp_path / "somefile").write_text("")
    code, err = run_cli(["--report-only", "--out", str(smoke_results / "results"),
                         "--report-dir", str(tmp_path / "somefile" / "report")], capsys)
    one_line_error(code, err, "--report-dir", "is a file")


# ---------------------------------------------------------------- 5. bad data, found before training

def voc_run(root, out):
    return ["--ablation", "gcn_k", *SMOKE, "--data", "voc", "--data-root", str(root), "--out", str(out),
            "--report-dir", str(out.parent / "report")]


def test_truncated_jpeg_is_found_before_training(tmp_path, capsys):
    root = make_voc(tmp_path / "voc")
    bad = root / "benchmark_RELEASE/dataset/img/2008_000003.jpg"  # a train_aug image from SBD
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    out = tmp_path / "results"
    code, err = run_cli(voc_run(root, out), capsys)
    one_line_error(code, err, "gcn_k: error: image file", bad, "truncated")
    assert not trained_files(tmp_path) and not (out / "runs").exists()


def test_bad_voc_label_value_in_val_is_found_before_training(tmp_path, capsys):
    root = make_voc(tmp_path / "voc")
    bad = root / "VOCdevkit/VOC2012/SegmentationClass/2007_000042.png"  # the last val label
    write_palette_png(bad, label_array(77))
    out = tmp_path / "results"
    code, err = run_cli(voc_run(root, out), capsys)
    one_line_error(code, err, f"label file {bad} has value 77; valid are 0..20 and 255")
    assert not trained_files(tmp_path) and not (out / "runs").exists()


def test_missing_real_data_is_one_line(tmp_path, capsys):
    code, err = run_cli(voc_run(tmp_path / "nowhere", tmp_path / "results"), capsys)
    one_line_error(code, err, "PASCAL VOC 2012", tmp_path / "nowhere", "--data-root")


def test_check_passes_on_good_trees_and_names_bad_files(tmp_path):
    for make, cls in ((make_voc, VOCSegmentation), (make_ade, ADE20K), (make_cityscapes, Cityscapes)):
        root = make(tmp_path / cls.__name__)
        for split in ("train", "val"):
            cls(root, split).check()
    ade = ADE20K(tmp_path / "ADE20K", "val")
    write_gray_png(ade.items[0][1], np.full((H, W), 151, np.uint8))
    with pytest.raises(ValueError, match="stored as 151"):
        ade.check()
    city = Cityscapes(tmp_path / "Cityscapes", "train")
    write_gray_png(city.items[1][1], np.full((H, W), 40, np.uint8))  # not a labelId
    with pytest.raises(ValueError, match=f"{city.items[1][1]} has value 40; Cityscapes labelIds are 0..33"):
        city.check()
    write_gray_png(city.items[1][1], np.full((H + 2, W), 7, np.uint8))
    with pytest.raises(ValueError, match=f"{city.items[1][1]} is {W}x{H + 2} but image"):
        city.check()
    city.items[0][0].unlink()
    with pytest.raises(ValueError, match=f"image file {city.items[0][0]} is missing"):
        city.check()
    voc = VOCSegmentation(tmp_path / "VOCSegmentation", "train")
    mat = voc.items[3][1]
    mat.write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="cannot read SBD label file"):
        voc.check()


def test_damaged_synthetic_cache_is_found_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGABL_CACHE", str(tmp_path / "cache"))
    data_cfg = settings_of("gcn_k", "smoke").data
    good = build_dataset(data_cfg, "val")
    good.check()
    torch.save({"images": good.images, "labels": good.labels.clamp(max=9) * 0 + 9, "params": good.cached_params},
               good.path)
    out = tmp_path / "results"
    code, err = run_cli(["--ablation", "gcn_k", *SMOKE, "--out", str(out), "--report-dir", str(tmp_path / "r")],
                        capsys)
    one_line_error(code, err, f"synthetic dataset cache {good.path}: label value 9, valid are 0..4")
    assert not out.exists()
    with open(good.path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match="is unreadable"):
        build_dataset(data_cfg, "val")


# ---------------------------------------------------------------- 6. bad results CSVs

def cut_last_line(text):
    lines = text.splitlines(keepends=True)
    return "".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2], f"line {len(lines)}: "


def cut_in_last_field(text):
    """Cut within the time that ends the row: it still parses, as an earlier time or a shorter id."""
    lines = text.splitlines(keepends=True)
    return "".join(lines[:-1]) + lines[-1][:-4], f"line {len(lines)}: no line end"


def drop_miou(text):
    rows = pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False)
    return rows.drop(columns=["mIoU"]).to_csv(index=False), "no mIoU column (a metric of gcn_boundary)"


def text_in_miou(text):
    rows = pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False)
    rows.loc[1, "mIoU"] = "about 70"
    return rows.to_csv(index=False), "line 3: mIoU is 'about 70', not a number"


def set_cell(column, value, message):
    """A damage: row 2 (line 3) of `column` set to `value`; the message it should give."""
    def damage(text):
        rows = pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False)
        rows.loc[1, column] = value
        return rows.to_csv(index=False), message
    return damage


@pytest.mark.parametrize("damage", [
    cut_last_line, cut_in_last_field, drop_miou, text_in_miou, lambda text: ("", "is empty"),
    set_cell("status", "okk", "line 3: status 'okk' is not one of ok, failed: non-finite loss, failed: CRF unavailable"),
    set_cell("model_config", '{"arch": "single_head", "head', "line 3: model_config is not JSON"),
    set_cell("per_class_iou", "[0.5, 0.7", "line 3: per_class_iou is not JSON ('[0.5, 0.7')"),
    set_cell("mIoU", "nan", 'line 3: mIoU is nan in a finished ("ok") row, not a finite number'),
    set_cell("boundary_acc", "", 'line 3: boundary_acc is nan in a finished ("ok") row'),  # a metric of gcn_boundary
], ids=["cut mid-line", "cut in its last field", "no mIoU column", "text in mIoU", "empty", "unknown status",
        "config not JSON", "per-class IoU not JSON", "NaN mIoU in an ok row", "no boundary_acc in an ok row"])
def test_bad_results_csv_is_one_line_and_left_as_it_is(damage, results_copy, capsys):
    out, report = results_copy
    csv = out / "gcn_boundary.csv"
    damaged, message = damage(csv.read_text())
    csv.write_text(damaged)
    before = snapshot(out.parent)
    for argv in (["--report-only"], ["--ablation", "gcn_boundary", *SMOKE]):
        code, err = run_cli(argv + ["--out", str(out), "--report-dir", str(report)], capsys)
        one_line_error(code, err, csv, message)
        assert snapshot(out.parent) == before  # the CSV, the report, its figures: all as they were


# ---------------------------------------------------------------- 7. --preset paper --data synthetic

def test_paper_preset_on_the_embedded_data_resolves():
    for spec in load_all():
        for data_cfg in {str(p.data): p.data for p in plans_of(spec, "paper", data="synthetic")}.values():
            # no crop_size, scale, rotate, blur; flip only where a variant switches the mirror off (psp_chain)
            assert {k: v for k, v in data_cfg.items() if k != "flip"} == {"name": "synthetic"}, spec.name
            for split in ("train", "val"):  # SyntheticScenes takes it (it rejects unknown options)
                small = {**data_cfg, "image_size": 32, "n_train": 2, "n_val": 2}
                assert isinstance(build_dataset(small, split), SyntheticScenes)


# ---------------------------------------------------------------- 8. exit codes, failed runs

@pytest.mark.parametrize("argv,message", [
    (["--ablation", "gcn_k", "--seeds", "0"], "gcn_k: error: --seeds must be >= 1"),
    (["--ablation", "gcn_k", "--iterations", "0"], "gcn_k: error: --iterations must be >= 1"),
    (["--ablation", "gcn_k", "--seeds", "two"], "invalid int value"),
    (["--ablation", "gcn_k", "--data", "coco"], "invalid choice: 'coco'"),
])
def test_every_user_error_exits_2(argv, message, tmp_path, capsys):
    code, err = run_cli(argv + ["--preset", "smoke", "--out", str(tmp_path / "r"),
                                "--report-dir", str(tmp_path / "p")], capsys)
    one_line_error(code, err, message)


def test_a_failed_run_shows_as_failed_and_is_retried(tmp_path, monkeypatch):
    from segmodels.gcn import SingleHeadNet
    real_loss = SingleHeadNet.training_loss

    def nan_for_the_1x1_head(model, images, labels, progress=0.0):
        loss, parts = real_loss(model, images, labels, progress)
        head = getattr(model, "head", None)
        is_1x1 = isinstance(head, torch.nn.Conv2d) and head.kernel_size == (1, 1)
        return (loss * float("nan") if is_1x1 else loss), parts

    out, report = tmp_path / "results", tmp_path / "report"
    argv = ["--ablation", "gcn_boundary", *SMOKE, "--out", str(out), "--report-dir", str(report)]
    monkeypatch.setattr(SingleHeadNet, "training_loss", nan_for_the_1x1_head)
    assert run_all.main(argv) == 0
    rows = pd.read_csv(out / "gcn_boundary.csv").set_index("variant")
    assert rows.loc["base", "status"] == "failed: non-finite loss"
    assert "| base (1×1 conv) | 71.30 | failed (1 run(s))" in (report / "REPORT.md").read_text()
    monkeypatch.setattr(SingleHeadNet, "training_loss", real_loss)
    assert run_all.main(argv) == 0
    rows = pd.read_csv(out / "gcn_boundary.csv").set_index("variant")
    assert len(rows) == 4 and set(rows["status"]) == {"ok"}
    assert "failed (" not in (report / "REPORT.md").read_text()


# ---------------------------------------------------------------- 9. --set: types and ranges of the presets

@pytest.mark.parametrize("setting,message", [
    ("train.lr=abc", 'train.lr must be a number, got "abc"'),
    ("train.lr=nan", 'train.lr must be a number, got "nan"'),  # not JSON: read as text
    ("train.lr=NaN", "train.lr must be a finite number, got nan"),
    ("train.lr=Infinity", "train.lr must be a finite number, got inf"),
    ("train.lr=0", "train.lr must be > 0, got 0"),
    ("train.iterations=1.5", "train.iterations must be a whole number, got 1.5"),
    ("train.iterations=0", "train.iterations must be >= 1, got 0"),
    ("train.iterations=-5", "train.iterations must be >= 1, got -5"),
    ("train.batch_size=[8]", "train.batch_size must be a whole number, got [8]"),
    ("train.threads=0", "train.threads must be >= 1, got 0"),
    ("train.checkpoint_every=0", "train.checkpoint_every must be >= 1, got 0"),
    ("train.channels_last=1", "train.channels_last must be true or false, got 1"),
    ("data.n_train=0", "data.n_train must be >= 1, got 0"),
    ("model.backbone.widths=[8,NaN,8]", "model.backbone.widths[] must be a finite number, got nan"),
    ("data.n_trian=500", "unknown data option(s) ['n_trian'] for dataset 'synthetic'; valid: name, root, holdout, "
                         "image_size, n_train, n_val"),
    ("model.head_widht=8", "unknown option model.head_widht for arch 'single_head' (build_head); valid: freeze_bn, "
                           "head, k, width, width_ratio, br"),
    ("model.backbone.widht=8", "unknown option model.backbone.widht for arch 'single_head' (SmallCNN.__init__); "
                               "valid: widths, strides, convs"),
])
@pytest.mark.parametrize("command", ["--ablation", "--show-config"])
def test_a_set_of_the_wrong_type_or_range_is_one_line_before_any_run_folder(setting, message, command, tmp_path,
                                                                             capsys):
    out = tmp_path / "results"
    code, err = run_cli([command, "gcn_k", *SMOKE, "--set", setting, "--out", str(out),
                         "--report-dir", str(tmp_path / "report")], capsys)
    one_line_error(code, err, "gcn_k: error: ", message)
    assert not out.exists() and not (tmp_path / "report").exists()


def test_sets_of_the_presets_types_pass(capsys):
    from engine.config import parse_set
    assert parse_set("train.lr=1") == ("train.lr", 1)  # a float setting takes an int
    assert parse_set("seeds=[3, 5]") == ("seeds", [3, 5])  # seeds: an int or the looks
    assert parse_set("model.backbone.weights=null") == ("model.backbone.weights", None)  # from scratch
    assert parse_set("model.k=9") == ("model.k", 9)  # a model's own option: its constructor checks it
    assert run_all.main(["--show-config", "gcn_k", "k3", *SMOKE, "--set", "train.lr=0.02"]) == 0
    assert '"lr": 0.02' in capsys.readouterr().out


# ---------------------------------------------------------------- 10. a killed report write

def test_a_killed_report_writes_leftovers_are_removed_by_the_next_call(results_copy, capsys):
    out, report = results_copy
    leftovers = [report / "REPORT.md.999999999.tmp", report / "figures" / "gcn_boundary.png.999999999.tmp"]
    for leftover in leftovers:  # what atomic_write leaves when its writer (that pid, not alive) is killed
        leftover.write_text("half a report")
    code, _ = run_cli(["--report-only", "--out", str(out), "--report-dir", str(report)], capsys)
    assert code == 0 and not any(leftover.exists() for leftover in leftovers)


# ---------------------------------------------------------------- 11. an ablation file that does not import

BROKEN = {"syntax error": ('"""gcn_k, half edited."""\nNAME = "gcn_k"\nVARIANTS = [{"id": "base"\n',
                           "ablations/gcn_k.py line 3: SyntaxError: '{' was never closed"),
          "exception at import": ('"""gcn_k, half edited."""\nNAME = "gcn_k"\nK = {"a": 1}["b"]\n',
                                  "ablations/gcn_k.py line 3: KeyError at import: 'b'")}


@pytest.fixture(params=list(BROKEN))
def broken_gcn_k(request, tmp_path, monkeypatch):
    """ablations/gcn_k.py as a half-edited file (found first on the package's path); its message."""
    import sys

    import ablations
    text, message = BROKEN[request.param]
    folder = tmp_path / "edited"
    folder.mkdir()
    (folder / "gcn_k.py").write_text(text)
    monkeypatch.setattr(ablations, "__path__", [str(folder)] + list(ablations.__path__))
    monkeypatch.delitem(sys.modules, "ablations.gcn_k", raising=False)
    monkeypatch.setitem(ablations.ABLATIONS, "gcn_k", None)
    ablations._checked.cache_clear()
    yield message
    ablations._checked.cache_clear()


def test_a_broken_ablation_file_is_one_line_and_blocks_no_other(broken_gcn_k, results_copy, capsys):
    out, report = results_copy
    folders = ["--out", str(out), "--report-dir", str(report)]
    code, err = run_cli(["--ablation", "gcn_k", *SMOKE, *folders], capsys)
    one_line_error(code, err, f"gcn_k: error: {broken_gcn_k} (fix the file; the other ablations run without it)")
    code = run_all.main(["--list"])
    listed, err = capsys.readouterr()
    one_line_error(code, err, broken_gcn_k)
    assert len(listed.splitlines()) == 12 and "lc_threshold" in listed and "gcn_k " not in listed
    (report / "REPORT.md").unlink()
    code, err = run_cli(["--report-only", *folders], capsys)
    one_line_error(code, err, broken_gcn_k, "left out of the report")
    assert "gcn_boundary" in (report / "REPORT.md").read_text()  # built for the others
    code, err = run_cli(["--ablation", "gcn_boundary", *SMOKE, *folders], capsys)  # its rows are all there
    assert code == 0 and err == f"run_all.py: warning: {broken_gcn_k} (fix the file; the other ablations run " \
                                "without it); left out of the report\n", err


# ---------------------------------------------------------------- 12. a damaged analysis file

@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"\0" * len(b)], ids=["cut off", "zeros"])
def test_report_only_sets_a_damaged_analysis_aside_and_builds_without_it(damage, results_copy, capsys):
    out, report = results_copy
    (path,) = (out / "analysis").glob("data-*-preview.npz")  # the dataset preview the report shows
    path.write_bytes(damage(path.read_bytes()))
    kept = path.read_bytes()
    (report / "REPORT.md").unlink()
    code, err = run_cli(["--report-only", "--out", str(out), "--report-dir", str(report)], capsys)
    assert code == 0 and err.count("\n") == 1, err
    assert err.startswith(f"run_all.py: warning: {path} is damaged (") and err.endswith(
        f"set aside as {path.name}.damaged; the report is built without it\n"), err
    assert (out / "analysis" / (path.name + ".damaged")).read_bytes() == kept and not path.exists()
    assert "gcn_boundary" in (report / "REPORT.md").read_text()


# ---------------------------------------------------------------- 13. messages that say what to do

def test_a_full_disk_says_so_and_what_to_do(tmp_path, monkeypatch, capsys):
    """torch.save into /dev/full: the real error of a full disk ("enforce fail at inline_container.cc")."""
    from files import atomic_write
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, path, **kw: real_save(obj, "/dev/full" if "ckpt.pt" in str(path)
                                                                        else path, **kw))
    out = tmp_path / "results"
    code, err = run_cli(["--ablation", "gcn_boundary", *SMOKE, "--out", str(out), "--report-dir",
                         str(tmp_path / "report")], capsys)  # 3 iterations, a checkpoint after 2
    one_line_error(code, err, "gcn_boundary: error: cannot write ", "ckpt.pt (torch could not write it: [enforce fail "
                   "at inline_container.cc", "is its disk full? Free some space (or give --out a folder on another "
                   "disk) and run the same command again: finished runs and checkpoints are kept")
    assert not list(out.rglob("*.tmp"))

    def write_text(tmp):
        with open("/dev/full", "w") as f:
            f.write("x" * 10_000)
    with pytest.raises(OSError, match=rf"cannot write {tmp_path / 'a.json'} \(no space left on the device\): is its "
                                      "disk full"):
        atomic_write(str(tmp_path / "a.json"), write_text)


def test_a_garbage_weights_card_says_which_and_how_to_rebuild(tmp_path):
    import os

    from segmodels.pretrained import read_card, standin_name, standin_of, standin_paths
    kind, arch = standin_of(plans_of("gcn_k", "quick")[0].model)
    for path in standin_paths(kind, arch):
        shutil.copy(path, tmp_path)
    card = tmp_path / os.path.basename(standin_paths(kind, arch)[1])
    for garbage in ("{'sha256': 'single quotes'}", "[1, 2]"):
        card.write_text(garbage)
        with pytest.raises(ValueError, match=rf"^{card}: not a .*card .*damaged; rebuild it with `python -m "
                                             rf"engine.tools.pretrain --only {standin_name(kind, arch)}`") as err:
            read_card(kind, arch, str(tmp_path))
        assert "\n" not in str(err.value)
