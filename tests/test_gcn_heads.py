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
