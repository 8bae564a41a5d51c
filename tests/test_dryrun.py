"""--preset paper --dry-run: each ablation's paper-shape run starts on a CPU, on stand-ins of the real
datasets in their real layouts and sizes, with a checkpoint and a resume, and costs what it prints;
and the pieces it needs (stand-in trees, batches of validation images of different sizes)."""

import pytest
import torch

import run_all
from data import build_dataset
from data.standin import SIZES, make_standin
from data.transforms import pad_collate


def test_a_batch_of_different_sizes_is_padded_to_its_largest_with_the_padding_label():
    from data import PAD_LABEL
    a = (torch.ones(3, 2, 4), torch.zeros(2, 4, dtype=torch.long))
    b = (torch.ones(3, 3, 2), torch.ones(3, 2, dtype=torch.long))
    images, labels = pad_collate([a, b])
    assert images.shape == (2, 3, 3, 4) and labels.shape == (2, 3, 4)
    assert labels[0, 2].tolist() == [PAD_LABEL] * 4 and labels[1, :, 2:].eq(PAD_LABEL).all()
    assert images[0, :, 2].eq(0).all() and images[1, :, :, :2].eq(1).all()


@pytest.mark.parametrize("name, crop", [("voc", 321), ("ade20k", 473), ("cityscapes", 713)])
def test_stand_ins_are_read_by_the_real_loaders_at_real_sizes(tmp_path, name, crop):
    make_standin(name, tmp_path)
    train, val = (build_dataset({"name": name, "root": str(tmp_path), "crop_size": crop}, s) for s in ("train", "val"))
    train.check()
    assert len(train) == 4 and len(val) == 2
    assert train[(0, 1)][0].shape == (3, crop, crop)
    width, height = SIZES[name][0]
    image, label = val[0]  # padded bottom/right only: the real size sits in the corner
    assert image.shape[1] >= height and image.shape[2] >= width and label[:height, :width].ne(255).any()
    assert label.max() < 255 or label.eq(255).any()


@pytest.mark.parametrize("name", ["gcn_k", "psp_pool"])
def test_paper_dry_run_starts_resumes_and_writes_nothing(tmp_path, capsys, name):
    out = tmp_path / "results"
    code = run_all.main(["--ablation", name, "--preset", "paper", "--dry-run", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    line = printed.out.strip().splitlines()[-1]
    assert line.startswith(f"{name}: ") and "stopped after 1 and resumed" in line and "PFLOP" in line
    assert not out.exists()  # nothing written into the results folder


def test_dry_run_is_for_the_paper_preset(capsys):
    assert run_all.main(["--ablation", "gcn_k", "--dry-run"]) == 2
    assert "--dry-run checks the paper preset" in capsys.readouterr().err


def test_weights_torchvision_lacks_are_written_as_the_local_file_a_user_would_give(tmp_path, monkeypatch):
    """ResNet50-GCN (GCN Table 6) has no torchvision ImageNet weights: the dry run writes a state dict of it
    into its folder, returns the path, and the backbone loads it as `--weights PATH`; torchvision's own
    architectures go where torch.hub caches them (no path returned)."""
    from engine.tools.dryrun import write_standin_weights
    from segmodels import build_backbone
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    backbone = {"name": "resnet", "depth": 50, "output_stride": 32, "gcn": True, "weights": "imagenet"}
    path = write_standin_weights(backbone, str(tmp_path))
    assert path == str(tmp_path / "resnet50_gcn.pth")
    loaded = build_backbone({**backbone, "weights": path})
    saved = torch.load(path, weights_only=True)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saved.items())
    assert all(m.expand[1].weight.eq(0).all() for m in loaded.layer4)  # residual branches start at zero
    assert write_standin_weights({**backbone, "gcn": False}, str(tmp_path)) is None
    assert (tmp_path / "torch" / "hub" / "checkpoints").is_dir()
