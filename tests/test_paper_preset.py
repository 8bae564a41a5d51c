"""The paper preset resolves to the paper's set-up (shared/PAPERS.md), without training anything."""
import torch

from ablations import gcn_k
from helpers import plans_of
from segmodels import build_model


def test_gcn_k_paper_preset_is_resnet152_res5_head_on_voc_512():
    plans = plans_of(gcn_k, "paper", data_root="/data/voc")
    assert len(plans) == len(gcn_k.VARIANTS)
    plan = next(p for p in plans if p.variant == "k15")
    assert plan.data == {"name": "voc", "crop_size": 512, "scale": None, "flip": True, "root": "/data/voc"}
    assert plan.model["backbone"] == {"name": "resnet", "depth": 152, "output_stride": 32, "weights": "imagenet"}
    assert plan.train["batch_size"] == 1 and plan.train["momentum"] == 0.99
    assert plan.train["weight_decay"] == 5e-4
    offline = {**plan.model, "backbone": {**plan.model["backbone"], "weights": None}}
    with torch.device("meta"):  # shapes only: no weights are initialised or computed
        model = build_model(offline, 21).eval()
    # the head sits on res-5: 2048 channels at stride 32 (16×16 for the paper's 512-px input)
    assert model.backbone.channels["c5"] == 2048 and model.backbone.strides["c5"] == 32
    assert model.head.left[0].weight.shape == (21, 2048, 15, 1)
    assert model(torch.zeros(1, 3, 64, 64, device="meta")).shape == (1, 21, 64, 64)


def test_each_paper_preset_says_what_its_batchnorm_does_and_frozen_means_frozen():
    """GCN (ResNet-152 at batch 1) and the layer cascade freeze BatchNorm, PSPNet trains it (synchronised
    over its GPUs, batch 16), DeepLab's VGG-16 has none: each paper preset states it (model option
    freeze_bn). Frozen: statistics and affine parameters stay as they were through a training step."""
    import pytest

    from ablations import ABLATIONS
    from engine.step import make_optimizer, train_step
    expected = {"gcn": True, "lc": True, "psp": False, "deeplab": False}
    for name in ABLATIONS:
        for plan in plans_of(name, "paper"):
            assert plan.model["freeze_bn"] is expected[name.split("_")[0]], (name, plan.variant)
    small = {"name": "small", "widths": [8, 8, 8], "strides": [2, 2, 2], "convs": [1, 1, 1]}
    for freeze in (True, False):
        torch.manual_seed(0)
        model = build_model({"arch": "single_head", "backbone": small, "head": "gcn", "k": 3, "freeze_bn": freeze}, 3)
        bn = model.backbone.stages["s1"][0][1]
        before = {k: v.clone() for k, v in bn.state_dict().items()}
        head = model.head.left[0].weight.clone()
        cfg = {"lr": 0.1, "head_lr_mult": 1.0, "momentum": 0.9, "weight_decay": 1e-4}
        train_step(model.train(), make_optimizer(model, cfg), torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32)),
                   cfg, "cpu")
        unchanged = [torch.equal(before[k], v) for k, v in bn.state_dict().items() if k != "num_batches_tracked"]
        assert all(unchanged) is freeze and (bn.training is not freeze) and (bn.weight.requires_grad is not freeze)
        assert not torch.equal(head, model.head.left[0].weight)  # the rest trains either way
    with pytest.raises(TypeError):
        build_model({"arch": "single_head", "backbone": small, "head": "gcn", "k": 3, "freeze": True}, 3)
