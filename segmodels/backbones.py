"""What a network sees: backbones that return their stage outputs as an ordered dict.

Every backbone maps an image [B,3,H,W] to {stage_name: feature map}, in order from shallow to deep,
and has `channels` ({stage_name: channels}) and `strides` ({stage_name: output stride}).
The last entry is the one a head sits on; the one before it is where an auxiliary head sits.
"""
import os
from collections import OrderedDict

import torch
import torch.nn as nn
import torchvision

from segmodels.base import builds
from segmodels.pretrained import standin_options, with_standin


def conv_bn_relu(cin, cout, stride=1, dilation=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Stages(nn.Module):
    """A backbone whose `stages` (an nn.ModuleDict, shallow to deep) run in order, each output kept."""

    def forward(self, x):
        out = OrderedDict()
        for name, stage in self.stages.items():
            x = stage(x)
            out[name] = x
        return out


class SmallCNN(Stages):
    """A plain CNN for the CPU presets: output stride 8 and a deliberately small receptive field
    (39 px with the defaults), so that what a head adds to the receptive field is what matters.

    Stage i is `convs[i]` 3×3 conv-BN-ReLU layers of `widths[i]` channels, the first with stride
    `strides[i]`. Defaults: 24 (/2) → 32, 32 (/4) → 64, 64 (/8).
    """

    def __init__(self, widths=(24, 32, 64), strides=(2, 2, 2), convs=(1, 2, 2)):
        super().__init__()
        if not (len(widths) == len(strides) == len(convs)):
            raise ValueError("SmallCNN: widths, strides and convs must have the same length")
        self.stages = nn.ModuleDict()
        self.channels, self.strides = OrderedDict(), OrderedDict()
        cin, total_stride = 3, 1
        for i, (w, s, n) in enumerate(zip(widths, strides, convs), start=1):
            layers = [conv_bn_relu(cin, w, stride=s)] + [conv_bn_relu(w, w) for _ in range(n - 1)]
            total_stride *= s
            name = f"s{i}"
            self.stages[name] = nn.Sequential(*layers)
            self.channels[name], self.strides[name] = w, total_stride
            cin = w


@builds("backbone", "small")
def small_cnn(cfg):
    return with_standin(SmallCNN(**standin_options(cfg)), cfg)


def receptive_field(module: nn.Module) -> int:
    """Receptive field (input pixels) of a plain feed-forward stack of convs and pools, in
    module order: rf += (k - 1) * dilation * jump; jump *= stride. Valid for sequential nets."""
    rf, jump = 1, 1
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
            s = m.stride if isinstance(m.stride, tuple) else (m.stride,) * 2
            d = m.dilation if isinstance(m.dilation, tuple) else (m.dilation,) * 2
            rf += (max(k) - 1) * max(d) * jump
            jump *= max(s)
    return rf


# --- ImageNet weights -------------------------------------------------------------------------
# No download ever happens here (the machines may have no internet): torchvision's weights enums
# are used only for the URL and file name of the checkpoint torch.hub would have cached.

IMAGENET_WEIGHTS_ENUMS = {
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
    "resnet152": "ResNet152_Weights",
    "vgg16": "VGG16_Weights",
}


def imagenet_checkpoint(arch):
    """(path, url) of the torchvision IMAGENET1K_V1 checkpoint for `arch`, the path being where
    torch.hub caches it: $TORCH_HOME/hub/checkpoints/<file name of the url>."""
    if arch not in IMAGENET_WEIGHTS_ENUMS:
        raise FileNotFoundError(f"torchvision has no ImageNet weights of {arch} (those known: "
                                f"{', '.join(sorted(IMAGENET_WEIGHTS_ENUMS))}): give a local file of its "
                                "weights with --weights PATH")
    url = getattr(torchvision.models, IMAGENET_WEIGHTS_ENUMS[arch]).IMAGENET1K_V1.url
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    return path, url


def read_state_dict(path):
    """A state dict from a local file: a raw state dict, or a dict holding one under 'state_dict'
    or 'model'; a leading 'module.' (DDP) is stripped from the keys."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated/corrupt file, or not a (tensor-only) torch checkpoint
        first_line = (str(e).splitlines() or [""])[0]  # torch's full message is pages of advice
        raise RuntimeError(f"could not read weights file {path} (corrupt, truncated, or not a "
                           f"tensor-only torch checkpoint): {type(e).__name__}: {first_line}") from e
    if isinstance(checkpoint, dict):
        for wrapper_key in ("state_dict", "model"):
            if isinstance(checkpoint.get(wrapper_key), dict):
                checkpoint = checkpoint[wrapper_key]
                break
    if not (isinstance(checkpoint, dict) and checkpoint
            and all(isinstance(v, torch.Tensor) for v in checkpoint.values())):
        raise ValueError(f"{path} does not hold a state dict (a dict of tensors)")
    return OrderedDict((k[len("module."):] if k.startswith("module.") else k, v)
                       for k, v in checkpoint.items())


def load_imagenet_weights(model, arch, weights, ignore_prefixes=("fc.",), convert=None):
    """Load pretrained weights into `model` (whose keys follow torchvision's `arch`) and return the
    state dict that was loaded.

    weights: 'imagenet' (torchvision's IMAGENET1K_V1 file, which must already be in the torch.hub
    checkpoints folder) or a path to a local file. Keys starting with one of `ignore_prefixes`
    (the classifier) are dropped; any other key missing or unexpected, or a shape mismatch, is a
    ValueError, checked before anything is copied into the model.
    convert: optional function state dict -> state dict applied after dropping the ignored keys,
    for models that reshape torchvision's layers (e.g. DeepLab's fc6/fc7 as convolutions).
    """
    if weights == "imagenet":
        path, url = imagenet_checkpoint(arch)
        if not os.path.isfile(path):
            folder = os.path.dirname(path)
            raise FileNotFoundError(
                f"ImageNet weights for {arch} not found: looked for {path}. No download is tried "
                f"here. On a machine with internet, download {url} and put it in {folder} (the "
                f"torch hub checkpoints folder; set $TORCH_HOME to move it), or pass a local file "
                f"with --weights PATH.")
    else:
        path = os.fspath(weights)
    state = read_state_dict(path)
    state = OrderedDict((k, v) for k, v in state.items() if not k.startswith(tuple(ignore_prefixes)))
    if convert is not None:
        state = convert(state)

    expected = model.state_dict()
    unexpected = [k for k in state if k not in expected]
    # Old checkpoints (torchvision's V1 files included) predate BatchNorm's num_batches_tracked;
    # BatchNorm fills it in when it is absent.
    missing = [k for k in expected if k not in state and not k.startswith(tuple(ignore_prefixes))
               and not k.endswith("num_batches_tracked")]
    mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    problems = [(what, keys) for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
                if keys]
    if problems:
        lines = [f"  {what} ({len(keys)}): {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
                 for what, keys in problems]
        raise ValueError(f"weights in {path} do not fit {arch}:\n" + "\n".join(lines))
    model.load_state_dict(state, strict=False)  # strictness was checked above
    return state


# --- ResNet -----------------------------------------------------------------------------------

RESNET_CHANNELS = OrderedDict([("c2", 256), ("c3", 512), ("c4", 1024), ("c5", 2048)])
# output stride -> torchvision's replace_stride_with_dilation for layer2..layer4
RESNET_DILATION = {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}


# bottleneck blocks per stage; ResNet-269 (PSPNet Table 3) is not in torchvision, nor are ImageNet
# weights of it in torchvision's format (the PSPNet authors trained their own)
RESNET_BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3], 269: [3, 30, 48, 8]}


class ResNetBackbone(nn.Module):
    """torchvision ResNet-50/101/152 trunk, or ResNet-269 built of the same bottlenecks (no avgpool/fc):
    stages c2..c5 = layer1..layer4.

    output_stride 16 or 8 replaces the last one or two strided stages by dilated convolutions.
    weights: None (random init), 'imagenet' or a path to a local file (see load_imagenet_weights).
    Module names are torchvision's, so its checkpoints load as they are (less fc.*).

    deep_stem: the stem of PSPNet's released ResNets (their prototxts' conv1_1 … conv1_3; hszhao/semseg's
    deep_base): three 3×3 convs 3 → 64 (stride 2) → 64 → 128, each with BatchNorm and ReLU, for torchvision's
    7×7; layer1 then reads 128 channels. Its modules are named as semseg's (conv1 … conv3, bn1 … bn3), so the
    authors' ImageNet weights in semseg's format (its initmodel/resnet50_v2.pth, resnet101_v2.pth) load as
    they are; torchvision has none of this stem.
    """

    def __init__(self, depth=50, output_stride=32, weights=None, deep_stem=False):
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"ResNetBackbone: depth must be one of {list(RESNET_BLOCKS)}, got {depth!r}")
        if output_stride not in RESNET_DILATION:
            raise ValueError(f"ResNetBackbone: output_stride must be one of "
                             f"{sorted(RESNET_DILATION)}, got {output_stride!r}")
        self.arch = f"resnet{depth}" + ("_deep_stem" if deep_stem else "")
        resnet = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, RESNET_BLOCKS[depth],
                                                  replace_stride_with_dilation=RESNET_DILATION[output_stride])
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.deep_stem = bool(deep_stem)
        if self.deep_stem:
            self.conv1, self.bn1 = conv3x3(3, 64, stride=2), nn.BatchNorm2d(64)
            self.conv2, self.bn2 = conv3x3(64, 64), nn.BatchNorm2d(64)
            self.conv3, self.bn3 = conv3x3(64, 128), nn.BatchNorm2d(128)
            first = resnet.layer1[0]  # its 1×1 reduce and projection read the stem's 128 channels
            first.conv1, first.downsample[0] = conv1x1(128, 64), conv1x1(128, 256)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)

        self.channels = OrderedDict(RESNET_CHANNELS)
        self.strides, stride = OrderedDict(c2=4), 4  # stem: conv1 /2, maxpool /2
        for name, dilated in zip(("c3", "c4", "c5"), RESNET_DILATION[output_stride]):
            stride = stride if dilated else stride * 2
            self.strides[name] = stride
        if weights == "imagenet" and self.deep_stem:
            raise FileNotFoundError(
                f"torchvision has no ImageNet weights of ResNet-{depth} with the deep 3×3 stem (PSPNet's released "
                f"trunk): give the authors' ImageNet ResNet-{depth} in hszhao/semseg's format (its initmodel/resnet"
                f"{depth}_v2.pth: keys conv1-3, bn1-3, layer1-4) with --weights PATH")
        if weights is not None:
            load_imagenet_weights(self, self.arch, weights)

    def forward(self, x):
        if self.deep_stem:
            x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
            x = self.maxpool(self.relu(self.bn3(self.conv3(x))))
        else:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = OrderedDict()
        for name, layer in zip(self.channels, (self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            out[name] = x
        return out


@builds("backbone", "resnet")
def resnet(cfg):
    """ResNetBackbone, or with gcn: true its ResNet-GCN (GCN's Table 6; segmodels/gcn.py)."""
    opts = {k: v for k, v in cfg.items() if k != "name"}
    if not opts.pop("gcn", False):
        return ResNetBackbone(**opts)
    from segmodels.gcn import to_resnet50_gcn  # gcn.py builds on this file
    weights = opts.pop("weights", None)
    net = to_resnet50_gcn(ResNetBackbone(**opts))
    if weights is not None:  # torchvision has none of it: 'imagenet' is an error that says what to give
        load_imagenet_weights(net, net.arch, weights)
    return net


def conv3x3(cin, cout, stride=1):
    """A 3×3 conv without bias (BatchNorm follows), initialised as torchvision's ResNet convs."""
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def conv1x1(cin, cout):
    conv = nn.Conv2d(cin, cout, 1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def bottleneck_weights(cin, width, cout):
    """Conv weights of one ResNet bottleneck from its layer shapes: 1×1, 3×3, 1×1, and the 1×1
    projection where the shape changes (the exact facts' formula)."""
    return cin * width + 9 * width * width + width * cout + (cin * cout if cin != cout else 0)


def resnet_weights(blocks, block=None, deep_stem=False):
    """Conv weights of a ResNet trunk (7×7 stem, or deep_stem's 3×3s 3 → 64 → 64 → 128; four bottleneck
    stages of `blocks`, widths 64…512 × expansion 4; no fc) from its layer shapes; block(stage, cin,
    width, cout) may count a stage's blocks otherwise (ResNet-GCN)."""
    total, cin = (9 * (3 * 64 + 64 * 64 + 64 * 128), 128) if deep_stem else (7 * 7 * 3 * 64, 64)
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512))):
        count = (lambda c, w, o: block(stage, c, w, o)) if block else bottleneck_weights
        total += count(cin, width, 4 * width) + (n - 1) * count(4 * width, width, 4 * width)
        cin = 4 * width
    return total
