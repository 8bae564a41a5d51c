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
