import pytest
import torch

from segmodels import build_model
from segmodels.base import count_weights
from segmodels.gcn import GCNBlock, build_head

# PAPERS.md, GCN Table 2: #params after res-5 at 2048 → 21 channels, printed in thousands
TABLE2_GCN = {3: 260, 5: 434, 7: 608, 9: 782}


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_gcn_param_count_matches_table2(k):
    n = count_weights(build_head(2048, 21, "gcn", k))
    assert n == 2 * k * (2048 * 21 + 21 * 21)
    assert abs(n / 1000 - TABLE2_GCN[k]) < 1


@pytest.mark.parametrize("head,k", [("conv1x1", None), ("gcn", 3), ("gcn", 15), ("conv", 7), ("stack", 5)])
def test_heads_keep_the_map_size(head, k):
    x = torch.randn(2, 64, 16, 16)
    assert build_head(64, 5, head, k)(x).shape == (2, 5, 16, 16)


@pytest.mark.parametrize("k", [0, 1, 2, 4, 3.0, "7"])
def test_bad_kernel_size_is_a_clear_error(k):
    with pytest.raises(ValueError, match="odd integer >= 3"):
        GCNBlock(8, 2, k)


def test_unknown_head_is_a_clear_error():
    with pytest.raises(ValueError, match="choose one of"):
        build_head(8, 2, "dense")


def test_gcn_block_has_no_nonlinearity():
    torch.manual_seed(0)
    block = GCNBlock(6, 3, 5)
    x, y = torch.randn(1, 6, 9, 9), torch.randn(1, 6, 9, 9)
    zero = block(torch.zeros_like(x))  # the bias part
    lhs = block(2 * x - 3 * y) - zero
    rhs = 2 * (block(x) - zero) - 3 * (block(y) - zero)
    assert torch.allclose(lhs, rhs, atol=1e-5)


def test_single_head_net_upsamples_to_input():
    model = build_model({"arch": "single_head", "backbone": {"name": "small"}, "head": "gcn", "k": 15}, 5)
    out = model(torch.randn(2, 3, 128, 128))
    assert out.shape == (2, 5, 128, 128)
    # the small backbone's last map is 16×16 at 128 px, as res-5 is at 512 px in the paper
    assert model.backbone(torch.randn(1, 3, 128, 128))["s3"].shape[-1] == 16


# --- ResNet-GCN (Table 6) ----------------------------------------------------------------------

def test_gcn_bottleneck_counts_its_layer_shapes_by_hand():
    from segmodels.gcn import GCNBottleneck, gcn_bottleneck_weights
    # cin 8 → width 3 → cout 16, k 5: branches 2·(5·8·3 + 5·3·3) = 330, expand 3·16 = 48, projection 8·16 = 128
    assert gcn_bottleneck_weights(8, 3, 16, 5) == 330 + 48 + 128
    assert count_weights(GCNBottleneck(8, 3, 16, 5, stride=2)) == 506
    assert count_weights(GCNBottleneck(16, 3, 16, 5)) == 2 * (5 * 16 * 3 + 5 * 9) + 48  # identity shortcut
    out = GCNBottleneck(8, 3, 16, 5, stride=2)(torch.randn(2, 8, 12, 12))
    assert out.shape == (2, 16, 6, 6) and (out >= 0).all()  # ReLU after the sum


def test_gcn_bottleneck_sees_a_k_wide_cross():
    """One block's output pixel depends on inputs along a k-long row and column through each branch:
    a (k, k) square in all (k×1 then 1×k), where a 3×3 bottleneck sees 3×3."""
    from segmodels.gcn import GCNBottleneck
    torch.manual_seed(0)
    block = GCNBottleneck(4, 4, 4, 7).eval()
    x = torch.randn(1, 4, 15, 15, requires_grad=True)
    block(x)[0, :, 7, 7].sum().backward()
    reached = (x.grad.abs().sum(1)[0] > 0).nonzero()
    assert reached[:, 0].min() == 4 and reached[:, 0].max() == 10  # rows 7 ± 3
    assert reached[:, 1].min() == 4 and reached[:, 1].max() == 10


def test_small_resnet_stages_and_the_gcn_switch():
    from segmodels.gcn import GCNBottleneck, SmallResNet
    plain, gcn = SmallResNet(), SmallResNet(gcn=True)
    for net in (plain, gcn):
        out = net(torch.zeros(1, 3, 128, 128))
        assert [tuple(v.shape[1:]) for v in out.values()] == [(24, 64, 64), (64, 32, 32), (128, 16, 16)]
        assert list(net.strides.values()) == [2, 4, 8] and dict(net.channels) == {"s1": 24, "s2": 64, "s3": 128}
    assert not any(isinstance(m, GCNBottleneck) for m in plain.modules())
    assert sum(isinstance(m, GCNBottleneck) for m in gcn.modules()) == 4  # every block of s2 and s3
    assert plain.stages["s1"].state_dict().keys() == gcn.stages["s1"].state_dict().keys()
    with pytest.raises(ValueError, match="multiples of 4"):
        SmallResNet(widths=(62, 128))


def test_resnet50_gcn_and_its_weights_errors():
    from segmodels import build_backbone
    cfg = {"name": "resnet", "depth": 50, "output_stride": 32, "gcn": True}
    with pytest.raises(FileNotFoundError, match="torchvision has no ImageNet weights of resnet50_gcn.*--weights PATH"):
        build_backbone({**cfg, "weights": "imagenet"})
    with pytest.raises(ValueError, match="output stride 32"):
        build_backbone({**cfg, "output_stride": 8})
    with pytest.raises(ValueError, match="takes weights 'fractal'"):
        build_backbone({"name": "small_resnet", "weights": "imagenet"})


def test_resnet50_gcn_loads_its_own_state_dict_from_a_file(tmp_path):
    from segmodels import build_backbone
    cfg = {"name": "resnet", "depth": 50, "output_stride": 32, "gcn": True}
    torch.manual_seed(0)
    saved = build_backbone(cfg).state_dict()
    torch.save(saved, tmp_path / "resnet50_gcn.pth")
    loaded = build_backbone({**cfg, "weights": str(tmp_path / "resnet50_gcn.pth")}).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())
