"""ResNet backbones and ImageNet weight loading (no download: checkpoints are written to tmp)."""
import os

import pytest
import torch
import torchvision

from segmodels.backbones import ResNetBackbone, imagenet_checkpoint, load_imagenet_weights


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub folder under tmp, set through $TORCH_HOME as a user would."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    hub = torch.hub.get_dir()
    assert hub.startswith(str(tmp_path)), "torch.hub.set_dir was called elsewhere; TORCH_HOME is ignored"
    return hub


@pytest.fixture(scope="module")
def resnet50_state():
    """State dict of a randomly initialised torchvision resnet50, fc included, as the hub file holds."""
    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None).state_dict()


def assert_trunk_equals(backbone, state):
    trunk = backbone.state_dict()
    assert set(trunk) == {k for k in state if not k.startswith("fc.")}
    for k, v in trunk.items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("output_stride, c5_size", [(32, 2), (16, 4), (8, 8)])
def test_shapes_and_strides(output_stride, c5_size):
    backbone = ResNetBackbone(50, output_stride=output_stride).eval()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 64, 64))
    assert list(out) == ["c2", "c3", "c4", "c5"]
    assert list(backbone.channels.items()) == [("c2", 256), ("c3", 512), ("c4", 1024), ("c5", 2048)]
    assert out["c5"].shape[-1] == c5_size
    for name, feature in out.items():
        assert feature.shape == (1, backbone.channels[name], 64 // backbone.strides[name],
                                 64 // backbone.strides[name])
    assert backbone.strides["c5"] == output_stride


def test_parameter_count_is_torchvision_minus_fc():
    count = lambda m: sum(p.numel() for p in m.parameters())
    expected = count(torchvision.models.resnet50(weights=None)) - (2048 * 1000 + 1000)
    assert count(ResNetBackbone(50)) == expected


def test_deeper_resnet_builds():
    backbone = ResNetBackbone(101, output_stride=16)
    assert len(backbone.layer3) == 23 and backbone.strides["c5"] == 16


@pytest.mark.parametrize("kwargs", [dict(depth=34), dict(depth=18), dict(output_stride=4),
                                    dict(output_stride=64)])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        ResNetBackbone(**kwargs)


def test_imagenet_weights_from_hub_cache(hub_dir, resnet50_state):
    path, url = imagenet_checkpoint("resnet50")
    assert path == os.path.join(hub_dir, "checkpoints", os.path.basename(url))
    assert os.path.basename(path) == os.path.basename(
        torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url)
    os.makedirs(os.path.dirname(path))
    torch.save(resnet50_state, path)
    assert_trunk_equals(ResNetBackbone(50, weights="imagenet"), resnet50_state)


def test_imagenet_weights_missing_says_where_to_put_them(hub_dir):
    path, url = imagenet_checkpoint("resnet50")
    with pytest.raises(FileNotFoundError) as err:
        ResNetBackbone(50, weights="imagenet")
    message = str(err.value)
    assert path in message and url in message and "--weights" in message
    assert not os.path.exists(path)  # nothing was downloaded


def test_vgg16_checkpoint_name(hub_dir):
    path, url = imagenet_checkpoint("vgg16")
    assert url == torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    assert path.startswith(hub_dir)


def test_weights_from_local_file(tmp_path, resnet50_state):
    path = tmp_path / "raw.pth"
    torch.save(resnet50_state, path)
    assert_trunk_equals(ResNetBackbone(50, weights=str(path)), resnet50_state)


def test_weights_from_wrapped_ddp_checkpoint(tmp_path, resnet50_state):
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in resnet50_state.items()}, "epoch": 3}, path)
    assert_trunk_equals(ResNetBackbone(50, weights=path), resnet50_state)


def test_checkpoint_without_num_batches_tracked_loads(tmp_path, resnet50_state):
    # torchvision's V1 files predate BatchNorm's num_batches_tracked buffer.
    path = tmp_path / "old.pth"
    torch.save({"model": {k: v for k, v in resnet50_state.items()
                          if not k.endswith("num_batches_tracked")}}, path)
    ResNetBackbone(50, weights=path)


def test_missing_local_file(tmp_path):
    path = str(tmp_path / "nowhere.pth")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        ResNetBackbone(50, weights=path)


def test_wrong_shape_names_key_and_leaves_model_untouched(tmp_path, resnet50_state):
    state = dict(resnet50_state)
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3, 1, 1)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    backbone = ResNetBackbone(50)
    before = backbone.conv1.weight.clone()
    with pytest.raises(ValueError, match="layer1.0.conv1.weight") as err:
        load_imagenet_weights(backbone, "resnet50", path)
    assert "bad_shape.pth" in str(err.value)
    assert torch.equal(backbone.conv1.weight, before)


def test_unexpected_and_missing_keys(tmp_path, resnet50_state):
    state = {k: v for k, v in resnet50_state.items() if k != "layer4.2.bn3.bias"}
    state["head.weight"] = torch.zeros(1)
    path = tmp_path / "keys.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        ResNetBackbone(50, weights=path)
    assert "layer4.2.bn3.bias" in str(err.value) and "head.weight" in str(err.value)


def test_corrupt_file_names_it(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(RuntimeError, match="corrupt.pth"):
        ResNetBackbone(50, weights=path)
