"""The pretrained stand-ins: the fractal images, a smoke-size pretraining rebuilt bit for bit, loading
checked against the card, and the quick preset's models starting from the committed weights."""
import os

import numpy as np
import pytest
import torch

from data.fractals import FractalImages, colour_class, ifs, render
from engine.tools.pretrain import COLOUR_RECIPE, RECIPE, cpu_backbones, pretrain
from segmodels import build_model
from segmodels.pretrained import WEIGHTS_DIR, load_standin, read_card, standin_name, standin_of, weights_id
from tests.helpers import plans_of

SMOKE_RECIPE = {**RECIPE, "classes": 4, "per_class": 6, "held_out": 2, "size": 32, "epochs": 2, "batch_size": 8}
SMALL = {"name": "small", "widths": [8, 8, 16], "strides": [2, 2, 2], "convs": [1, 1, 1]}


def test_ifs_maps_are_contractive_and_images_are_pure_functions_of_their_seed():
    for cls in range(20):
        mats, _, prob = ifs(0, cls)
        assert np.linalg.svd(mats, compute_uv=False).max() < 1  # every map contracts: an attractor exists
        assert prob.sum() == pytest.approx(1)
    a, b = render(0, 3, 7, 32), render(0, 3, 7, 32)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and (a == b).all()
    assert (render(0, 3, 8, 32) != a).any() and (render(1, 3, 7, 32) != a).any()


def test_fractal_splits_are_disjoint_per_class(tmp_path):
    train = FractalImages("train", 3, 5, 2, 32, cache_dir=str(tmp_path))
    val = FractalImages("val", 3, 5, 2, 32, cache_dir=str(tmp_path))
    assert len(train) == 9 and len(val) == 6
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert (val.images[0] == torch.from_numpy(render(0, 0, 3, 32)).permute(2, 0, 1)).all()  # val: the last 2 of each


SMALL_RESNET = {"name": "small_resnet", "stem": 8, "widths": [8, 8], "blocks": [1, 1], "gcn": True, "gcn_k": [5, 7],
                "gcn_width": [2, 2]}


@pytest.mark.parametrize("arch", [SMALL, SMALL_RESNET], ids=["small", "small_resnet"])
def test_smoke_pretraining_is_rebuilt_bit_for_bit(tmp_path, arch):
    kind = arch["name"]
    first = pretrain(kind, arch, SMOKE_RECIPE, out_dir=str(tmp_path / "a"))
    second = pretrain(kind, arch, SMOKE_RECIPE, out_dir=str(tmp_path / "b"))
    assert first["sha256"] == second["sha256"]
    assert first["name"] == standin_name(kind, arch) and first["recipe"] == SMOKE_RECIPE
    assert 0 <= first["held_out_accuracy"] <= 100
    # 4 classes: the top 5 always hold the label
    assert first["held_out_top5_error"] == 0 and first["chance_accuracy"] == 25
    net = build_model({"arch": "single_head", "head": "conv1x1", "backbone": arch}, 5).backbone
    card = load_standin(net, kind, arch, str(tmp_path / "a"))
    saved = torch.load(tmp_path / "a" / f"{card['name']}.pt", weights_only=True)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in saved.items())


def test_missing_or_altered_weights_are_one_clear_line(tmp_path):
    pretrain("small", SMALL, SMOKE_RECIPE, out_dir=str(tmp_path))
    name = standin_name("small", SMALL)
    os.remove(tmp_path / f"{name}.pt")
    with pytest.raises(FileNotFoundError, match=rf"looked for .*{name}\.pt.*python -m engine.tools.pretrain --only {name}"):
        read_card("small", SMALL, str(tmp_path))
    pretrain("small", SMALL, SMOKE_RECIPE, out_dir=str(tmp_path))
    with open(tmp_path / f"{name}.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"does not match its card .*altered or damaged") as err:
        read_card("small", SMALL, str(tmp_path))
    assert "\n" not in str(err.value)


def test_every_cpu_backbone_has_committed_weights_its_models_start_from():
    """Each distinct backbone the quick and full presets train has a stand-in in weights/ whose card checks out,
    and a quick plan's model starts from exactly those weights (every variant the same: pairing)."""
    from ablations import load_all
    names = cpu_backbones(load_all())  # the quick and the full preset's
    assert any(name.endswith("-colour") for name in names)  # PSPNet's colour-keeping stand-ins among them
    for name, (kind, arch) in names.items():
        card = read_card(kind, arch)
        assert card["name"] == name and card["held_out_accuracy"] > 5 * card["chance_accuracy"]
    for ablation, weights in (("gcn_k", "fractal"), ("lc_threshold", "fractal"), ("deeplab_fov", "fractal"),
                              ("psp_pool", "fractal_colour")):
        plans = [p for p in plans_of(ablation, "quick") if p.seed == 0][:2]
        for plan in plans:
            assert plan.model["backbone"]["weights"] == weights
            kind, arch = standin_of(plan.model)
            saved = torch.load(os.path.join(WEIGHTS_DIR, standin_name(kind, arch) + ".pt"), weights_only=True)
            model = build_model(plan.model, 5)
            state = {k: v for k, v in model.state_dict().items()}
            trunk = {k.split(".", 1)[1] if kind != "vgg" else k.split(".", 2)[2]: v for k, v in state.items()
                     if k.startswith("backbone.")}
            assert all(torch.equal(trunk[k], v) for k, v in saved.items() if k in trunk)
            assert sum(k in trunk for k in saved) == len(saved)
            assert weights_id(plan.model).startswith(f"fractal:{standin_name(kind, arch)}:")


def test_the_colour_target_is_the_attractors_coarse_colour_and_its_pretraining_is_rebuilt_bit_for_bit(tmp_path):
    """The colour-keeping stand-in: each image's second target is which RGB channels of its attractor's colour
    exceed 0.5; the images are those of the class-only split (same render, same cache layout); the pretraining
    with both targets rebuilds bit for bit, under a name of its own beside the class-only stand-in's."""
    assert [colour_class(c) for c in ((0.9, 0.15, 0.1), (0.1, 0.25, 0.9), (0.6, 0.6, 0.6), (0.2, 0.2, 0.2))] == [4, 1, 7, 0]
    image, colour = render(0, 2, 5, 32, with_colour=True)
    assert (image == render(0, 2, 5, 32)).all()
    drawn = image.reshape(-1, 3).astype(int)
    # the attractor's pixels are the colour's (noise aside): some pixel's bits agree with the target
    bits = np.stack([drawn[:, 0] > 127, drawn[:, 1] > 127, drawn[:, 2] > 127], 1) @ np.array([4, 2, 1])
    assert (bits == colour).any()
    plain = FractalImages("train", 3, 5, 2, 32, cache_dir=str(tmp_path))
    coloured = FractalImages("train", 3, 5, 2, 32, cache_dir=str(tmp_path), colour=True)
    assert torch.equal(plain.images, coloured.images) and plain.colours is None and len(coloured[0]) == 3
    assert coloured.colours.tolist() == [render(0, c, i, 32, with_colour=True)[1] for c in range(3) for i in range(3)]
    arch = {**SMALL, "weights": "fractal_colour"}
    recipe = {**SMOKE_RECIPE, "colour_target": True, "colour_weight": COLOUR_RECIPE["colour_weight"]}
    first = pretrain("small", arch, recipe, out_dir=str(tmp_path / "a"))
    second = pretrain("small", arch, recipe, out_dir=str(tmp_path / "b"))
    assert first["sha256"] == second["sha256"] and 0 <= first["held_out_colour_accuracy"] <= 100
    assert first["name"] == standin_name("small", SMALL) + "-colour"
    plain_card = pretrain("small", SMALL, SMOKE_RECIPE, out_dir=str(tmp_path / "a"))
    assert plain_card["sha256"] != first["sha256"] and "held_out_colour_accuracy" not in plain_card
    net = build_model({"arch": "single_head", "head": "conv1x1", "backbone": SMALL}, 5).backbone
    assert load_standin(net, "small", arch, str(tmp_path / "a"))["name"] == first["name"]
