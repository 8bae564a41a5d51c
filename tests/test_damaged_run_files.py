"""Damaged files in a run folder (a disk fault, a copy cut short, a hand edit): each is named in one
line, set aside (renamed, never deleted), and what it held is computed again, to the same numbers;
nothing of it reaches the results CSV."""
import shutil

import pandas as pd
import pytest

from helpers import run, tiny


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny ablation (2 variants, 1 seed, smoke size) and its rows."""
    out = tmp_path_factory.mktemp("finished") / "results"
    run(tiny(), out)
    return out, pd.read_csv(out / "tiny.csv")


def random_bytes(path):
    path.write_bytes(bytes(range(256)) * 8)


def cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def unfinished_with(damage):
    """The run as a kill mid-training leaves it (a checkpoint, no model.pt, no train.json), its
    checkpoint damaged: the finished model's file, cut in half or of random bytes."""
    def make(run_dir):
        (run_dir / "train.json").unlink()
        (run_dir / "model.pt").rename(run_dir / "ckpt.pt")
        damage(run_dir / "ckpt.pt")
        return run_dir / "ckpt.pt"
    return make


def damaged(name, damage):
    def make(run_dir):
        path = next(run_dir.glob(name))
        damage(path)
        return path
    return make


@pytest.mark.parametrize("make", [
    unfinished_with(random_bytes), unfinished_with(cut_in_half), damaged("model.pt", random_bytes),
    damaged("model.pt", cut_in_half), damaged("train.json", lambda p: p.write_text('{"status": "ok", "train_')),
    damaged("eval-*.json", lambda p: p.write_text("garbage")),
    damaged("eval-*.json", lambda p: p.write_text(p.read_text().replace('"mIoU": ', '"mIoU": "high", "was": '))),
    damaged("train.json", lambda p: p.write_text('{"status": "okk"}')),
], ids=["ckpt random bytes", "ckpt cut off", "model random bytes", "model cut off", "train.json cut off",
        "eval not JSON", "eval mIoU 'high'", "train.json unknown status"])
def test_a_damaged_run_file_is_named_set_aside_and_redone(make, finished, tmp_path, capsys):
    done, rows = finished
    out = tmp_path / "results"
    shutil.copytree(done, out)
    (out / "tiny.csv").unlink()  # the rows are written again from the run folders
    k3 = rows.set_index("variant").loc["k3"]
    path = make(out / "runs" / k3["run_id"])
    kept = path.read_bytes()
    capsys.readouterr()
    assert run(tiny(), out) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "set aside" in line]
    assert len(lines) == 1 and lines[0].startswith(f"run_all.py: warning: {path} is damaged (") and \
        lines[0].endswith("set aside as " + path.name + ".damaged; what it held is computed again"), err
    assert (path.parent / (path.name + ".damaged")).read_bytes() == kept  # renamed, not deleted
    again = pd.read_csv(out / "tiny.csv").set_index("variant")
    assert set(again["status"]) == {"ok"}
    for variant, before in rows.set_index("variant").iterrows():  # the same numbers as the first time
        assert again.loc[variant, "mIoU"] == before["mIoU"] and again.loc[variant, "run_id"] == before["run_id"]
    assert not (out / "runs" / k3["run_id"] / "ckpt.pt").exists() and (out / "runs" / k3["run_id"] / "model.pt").exists()
