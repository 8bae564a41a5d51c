"""DeepLab v1, "Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs"
(Chen et al., ICLR 2015): VGG-16 made fully convolutional at output stride 8, with the field-of-view
variants of its Table 2.

- Trunk: VGG-16's 13 3×3 convs; every max pool is 3×3 with padding 1; pool1-3 have stride 2,
  pool4 and pool5 stride 1 (output stride 8); conv5_x are dilated by 2 to make up for pool4.
- pool5a (DeepLab-LargeFOV and MSc-LargeFOV as released: their prototxts, not the paper's text): a
  3×3 average pooling, stride 1, pad 1, between pool5 and fc6. No parameters; it widens the field of
  view by 2 × 8 px.
- fc6: VGG's first FC layer as a k×k convolution with dilation d (the paper's "input stride");
  fc7: a 1×1 convolution; both with ReLU and dropout. Then a 1×1 classifier. Training takes the
  loss at output stride 8 against the labels subsampled by 8 (every 8th pixel from the first: the
  released train prototxts' Interp layer, shrink_factor 8); evaluation upsamples the scores ×8
  bilinearly to the input size, corners aligned (the test prototxts' Interp layer).
- Table 2's variants: 7×7 d4 (4096 filters), 4×4 d4 (4096), 4×4 d8 (4096), 3×3 d12 with 1024
  filters in fc6 and fc7 (DeepLab-LargeFOV).
- ImageNet initialisation: torchvision's VGG-16 with fc6/fc7 reshaped into convolutions and
  subsampled as the paper did (`vgg16_to_deeplab`).
- MSc (Table 1(a)'s DeepLab-MSc): a two-layer MLP on the input and on each of the first four max-pool
  outputs, concatenated to fc7's output before the classifier (`MultiScaleBranches`). As the paper
  (§4.3) and the released MSc prototxts train it: from the trained DeepLab(-LargeFOV), only the new
  layers learn (frozen_base: conv1_1 … fc7 keep their values; frozen_fc8: fc8's weights on fc7 too,
  as MSc-LargeFOV's prototxt). So the classifier is fc8 on fc7 (the base's) plus a bias-free 1×1 on
  the branches (`msc_classifier`): the same function as one 1×1 on the concatenation.

The CPU presets use the same structure scaled down: narrower layers, one conv per block, conv5/
pool5 dropped (a 4-block trunk, still output stride 8), BatchNorm since they train from scratch.
"""
from collections import OrderedDict
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import IGNORE_INDEX
from segmodels.backbones import load_imagenet_weights
from segmodels.base import SegModel, builds

VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)
VGG_FC_KERNEL = 7  # torchvision's classifier.0 is fc6: 7×7×512 → 4096
# pool1..pool5 strides: pool4/pool5 keep the resolution, so the output stride is 2·2·2 = 8
POOL_STRIDES = (2, 2, 2, 1, 1)
CONV5_DILATION = 2


def vgg_features(widths=VGG16_WIDTHS, convs=VGG16_CONVS, batch_norm=False):
    """VGG's convolutional part as DeepLab v1 changes it (see the module docstring). Without
    BatchNorm the layer indices are torchvision's vgg16.features', so its weights load by name.

    VGG-16 has 5 blocks; a CPU preset may keep 4 (conv5 and pool5 dropped: still output stride 8,
    with a receptive field a quarter of VGG-16's, to go with a quarter-size image)."""
    if len(widths) not in (4, 5) or len(convs) != len(widths):
        raise ValueError(f"DeepLab's VGG trunk has 5 blocks (4 in a reduced one): widths and convs need "
                         f"5 (or 4) entries each, got {list(widths)} and {list(convs)}")
    if any(int(n) < 1 for n in convs) or any(int(w) < 1 for w in widths):
        raise ValueError(f"every block needs at least one conv of at least one channel, "
                         f"got widths {list(widths)}, convs {list(convs)}")
    layers, cin = [], 3
    for block, (width, n, pool_stride) in enumerate(zip(widths, convs, POOL_STRIDES)):
        dilation = CONV5_DILATION if block == 4 else 1
        for _ in range(n):
            layers.append(nn.Conv2d(cin, width, 3, padding=dilation, dilation=dilation, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            cin = width
        layers.append(nn.MaxPool2d(3, stride=pool_stride, padding=1))
    return nn.Sequential(*layers)


def same_size_padding(kernel, dilation):
    """(left, right, top, bottom) zero padding that keeps a k×k conv of dilation d size-preserving.

    The taps span (k − 1)·d + 1 pixels, so (k − 1)·d pixels of padding are needed in all. For odd k
    (or an even k with an even dilation, as in all of the paper's variants: 4×4 at d 4 or 8) that
    total is even and splits evenly, so the taps sit symmetrically around the output pixel (for
    4×4 d4: offsets ±2, ±6; Caffe's pad 6). Only an even k with an odd dilation (the CPU preset's
    4×4 d1) leaves an odd total: the extra pixel goes right/bottom and the taps are centred half
    a feature pixel off, which no padding can avoid for an even number of taps."""
    total = (kernel - 1) * dilation
    lo = total // 2
    return lo, total - lo, lo, total - lo


class FOVConv(nn.Module):
    """fc6 as a dilated k×k convolution whose output keeps its input's size (any k, even too).

    gemm: on a CPU, computed as Caffe computes every convolution, im2col then one matrix product (MKL's
    SGEMM, pinned to one code path: engine/reproducible.py), instead of oneDNN's convolution, whose
    kernels and blocking follow the CPU: the 7×7 fc6 (k7d4) was the one model whose rows differed between
    an Intel and an AMD CPU of one capability. Same function, another order of the sums; on a GPU, the
    convolution."""

    def __init__(self, cin, cout, kernel, dilation, gemm=False):
        super().__init__()
        if not isinstance(kernel, int) or kernel < 1:
            raise ValueError(f"fc6 kernel must be a positive integer, got {kernel!r}")
        if not isinstance(dilation, int) or dilation < 1:
            raise ValueError(f"fc6 dilation must be a positive integer, got {dilation!r}")
        self.padding = same_size_padding(kernel, dilation)
        self.conv = nn.Conv2d(cin, cout, kernel, dilation=dilation)
        self.gemm = bool(gemm)

    @property
    def kernel_size(self):
        return self.conv.kernel_size[0]

    @property
    def dilation(self):
        return self.conv.dilation[0]

    def forward(self, x):
        x = F.pad(x, self.padding)
        if not (self.gemm and x.device.type == "cpu"):
            return self.conv(x)
        batch, height, width = x.shape[0], x.shape[-2] - self.span + 1, x.shape[-1] - self.span + 1
        cols = F.unfold(x.contiguous(), self.kernel_size, dilation=self.dilation)  # [B, C·k², L]
        cols = cols.transpose(0, 1).reshape(cols.shape[1], -1)  # [C·k², B·L]: one SGEMM for the batch
        out = torch.addmm(self.conv.bias[:, None], self.conv.weight.flatten(1), cols)
        return out.view(-1, batch, height, width).transpose(0, 1)

    @property
    def span(self):
        return (self.kernel_size - 1) * self.dilation + 1


MSC_TAPS = 5  # the input and pool1..pool4


class MultiScaleBranches(nn.Module):
    """DeepLab-MSc: on the input and on each of the first four max-pool outputs a two-layer MLP,
    `width` 3×3 convs then `width` 1×1 convs (the paper: 128 and 128), each with ReLU and dropout;
    the 3×3 conv strides to the trunk's output stride (8, 4, 2, 1, 1), so the five outputs
    concatenate to fc7's: +5 × width channels (the paper's +640)."""

    def __init__(self, in_channels, strides, width, dropout):
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"msc_width must be a positive integer, got {width!r}")
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, width, 3, stride=s, padding=1), nn.ReLU(inplace=True), nn.Dropout(dropout),
                          nn.Conv2d(width, width, 1), nn.ReLU(inplace=True), nn.Dropout(dropout))
            for c, s in zip(in_channels, strides))
        self.out_channels = width * len(self.branches)

    def forward(self, taps):
        return torch.cat([branch(t) for branch, t in zip(self.branches, taps)], 1)


class DeepLabVGG(nn.Module):
    """What DeepLab v1 takes from VGG-16 (all of it but the 1000-way classifier): conv trunk, fc6
    and fc7 as convolutions. Returns fc7's activations at output stride 8 (with msc_width, the MSc
    branches' outputs concatenated to them)."""

    def __init__(self, widths=VGG16_WIDTHS, convs=VGG16_CONVS, batch_norm=False, fc6_kernel=3,
                 fc6_dilation=12, fc_channels=1024, dropout=0.5, msc_width=None, pool5a=False, fc6_gemm=False):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.features = vgg_features(widths, convs, batch_norm)
        # count_include_pad: Caffe's AVE pooling divides by the window, padding included
        self.pool5a = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True) if pool5a else None
        self.fc6 = FOVConv(widths[-1], fc_channels, fc6_kernel, fc6_dilation, gemm=fc6_gemm)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, 1)
        self.drop = nn.Dropout(dropout)
        tap_strides, stride = [1], 1  # the input's, then each max pool's output stride
        for m in self.features:
            if isinstance(m, nn.MaxPool2d):
                stride *= m.stride
                tap_strides.append(stride)
        self.output_stride = stride
        self.msc = None
        if msc_width is not None:
            self.msc = MultiScaleBranches([3, *widths[:MSC_TAPS - 1]],
                                          [stride // s for s in tap_strides[:MSC_TAPS]], msc_width, dropout)
        self.out_channels = fc_channels + (self.msc.out_channels if self.msc else 0)

    def forward(self, x):
        taps, h = [x], x
        for m in self.features:
            h = m(h)
            if self.msc is not None and isinstance(m, nn.MaxPool2d) and len(taps) < MSC_TAPS:
                taps.append(h)
        if self.pool5a is not None:
            h = self.pool5a(h)
        h = self.drop(F.relu(self.fc6(h), inplace=True))
        h = self.drop(F.relu(self.fc7(h), inplace=True))
        return h if self.msc is None else torch.cat([h, self.msc(taps)], 1)


def decimation_step(full, reduced, what):
    """Step of the subsampling from `full` to `reduced` taps ('kernel') or filters ('filters')."""
    if what == "kernel":
        # decimation keeps both ends: 7 → 4 takes taps 0, 2, 4, 6; 7 → 3 takes 0, 3, 6
        if reduced < 2 or (full - 1) % (reduced - 1):
            raise ValueError(f"cannot decimate VGG's {full}×{full} fc6 to {reduced}×{reduced}: "
                             f"({full} − 1) must be a multiple of (k − 1), i.e. k in 2, 3, 4, 7")
        return (full - 1) // (reduced - 1)
    if reduced < 1 or full % reduced:
        raise ValueError(f"cannot subsample VGG's {full} fc filters to {reduced}: it must divide {full}")
    return full // reduced


def vgg16_to_deeplab(state, fc6_kernel, fc_channels):
    """torchvision vgg16 state dict (classifier.6 already dropped) → DeepLabVGG's keys.

    classifier.0 (fc6, 4096 × 512·7·7) becomes a 7×7 conv, decimated in space to fc6_kernel
    (7 → 4: every 2nd tap, 7 → 3: every 3rd) and in filters to fc_channels (4096 → 1024: every
    4th); classifier.3 (fc7, 4096 × 4096) becomes a 1×1 conv, subsampled the same way in both its
    output filters and its inputs (fc6's kept filters). Other keys pass through unchanged.
    Filter counts are read off the tensors, so a narrower VGG-shaped state dict converts too."""
    space = decimation_step(VGG_FC_KERNEL, fc6_kernel, "kernel")
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith(("classifier.0.", "classifier.3.")):
            every = decimation_step(value.shape[0], fc_channels, "filters")
        if key == "classifier.0.weight":
            conv = value.reshape(value.shape[0], -1, VGG_FC_KERNEL, VGG_FC_KERNEL)
            out["fc6.conv.weight"] = conv[::every, :, ::space, ::space].contiguous()
        elif key == "classifier.0.bias":
            out["fc6.conv.bias"] = value[::every].contiguous()
        elif key == "classifier.3.weight":
            out["fc7.weight"] = value[::every, ::every].reshape(fc_channels, fc_channels, 1, 1).contiguous()
        elif key == "classifier.3.bias":
            out["fc7.bias"] = value[::every].contiguous()
        else:
            out[key] = value
    return out


@builds("arch", "deeplab_v1")  # builds its own VGG trunk (DeepLab's pools, dilations, fc6/fc7)
class DeepLabV1(SegModel):
    """DeepLab v1: DeepLabVGG (as `backbone`, base learning rate) + 1×1 classifier (the paper's
    fc8, trained at 10× the rate through head_lr_mult), upsampled bilinearly to the input size.

    backbone cfg: {'name': 'vgg', 'widths', 'convs', 'batch_norm', 'weights'}; weights None,
    'imagenet' (torchvision's VGG-16 file in the torch hub cache) or a local file, VGG-16 layout only.
    fc6_kernel, fc6_dilation, fc_channels: a Table 2 variant (a CPU preset gives its scaled-down
    values directly); dropout follows fc6 and fc7. msc_width: DeepLab-MSc's branch width (the paper:
    128); None: no MSc. frozen_base: (MSc) the base's conv1_1 … fc7 are not trained (nor its BatchNorm,
    if any); they start from the trained base (the engine's init_from). frozen_fc8: fc8's weights on
    fc7 are not trained either (MSc-LargeFOV as released). fc6_gemm: fc6 by im2col and MKL's SGEMM on a
    CPU (FOVConv), the same on every CPU of one capability. pool5a: the released LargeFOV's 3×3 average pooling before fc6. freeze_bn:
    SegModel.freeze_batchnorm (VGG-16 itself has no BatchNorm; the CPU presets' narrow trunk has).
    """

    def __init__(self, backbone, num_classes, fc6_kernel=3, fc6_dilation=12, fc_channels=1024, dropout=0.5,
                 msc_width=None, pool5a=False, freeze_bn=False, frozen_base=False, frozen_fc8=False, fc6_gemm=False):
        super().__init__()
        if (frozen_base or frozen_fc8) and msc_width is None:
            raise ValueError("frozen_base / frozen_fc8 train only DeepLab-MSc's branches: they need msc_width")
        backbone = dict(backbone)
        name = backbone.pop("name", None)
        if name != "vgg":
            raise ValueError(f"deeplab_v1 needs a 'vgg' backbone, got {name!r}")
        weights = backbone.pop("weights", None)
        unknown = set(backbone) - {"widths", "convs", "batch_norm"}
        if unknown:
            raise ValueError(f"deeplab_v1: unknown backbone options {sorted(unknown)}; "
                             f"valid: widths, convs, batch_norm, weights")
        self.backbone = DeepLabVGG(fc6_kernel=fc6_kernel, fc6_dilation=fc6_dilation, fc_channels=fc_channels,
                                   dropout=dropout, msc_width=msc_width, pool5a=pool5a, fc6_gemm=fc6_gemm,
                                   **backbone)
        self.classifier = nn.Conv2d(fc_channels, num_classes, 1)  # fc8, on fc7
        nn.init.normal_(self.classifier.weight, std=0.01)  # the paper's fc8 initialisation
        nn.init.zeros_(self.classifier.bias)
        self.msc_classifier = None  # fc8's inputs from the MSc branches (fc8's bias is the classifier's)
        if msc_width is not None:
            self.msc_classifier = nn.Conv2d(self.backbone.msc.out_channels, num_classes, 1, bias=False)
            nn.init.normal_(self.msc_classifier.weight, std=0.01)
        self.trunk_only = weights == "fractal"  # what pretrained weights initialise (parameter_groups)
        if weights == "fractal":  # a CPU preset's narrow trunk: its pretrained stand-in (fc6, fc7 are new)
            from segmodels.pretrained import load_standin
            load_standin(self.backbone.features, "vgg", {"name": name, **backbone})
        elif weights is not None:
            if (tuple(backbone.get("widths", VGG16_WIDTHS)) != VGG16_WIDTHS
                    or tuple(backbone.get("convs", VGG16_CONVS)) != VGG16_CONVS or backbone.get("batch_norm")):
                raise ValueError("pretrained weights are torchvision's VGG-16 (no BatchNorm): use the "
                                 "default widths/convs and batch_norm false with weights")
            # the MSc branches are new layers: VGG-16 has none, they keep their initialisation
            load_imagenet_weights(self.backbone, "vgg16", weights, ignore_prefixes=("classifier.6.", "msc."),
                                  convert=partial(vgg16_to_deeplab, fc6_kernel=fc6_kernel,
                                                  fc_channels=fc_channels))
        for part in ([self.backbone.features, self.backbone.fc6, self.backbone.fc7] if frozen_base else []) + \
                ([self.classifier] if frozen_fc8 else []):
            part.requires_grad_(False)
        self.freeze_batchnorm(freeze_bn or frozen_base)  # a frozen trunk's BatchNorm keeps the base's statistics

    def parameter_groups(self):
        """(pretrained, new): the VGG trunk with fc6/fc7, which ImageNet's VGG-16 FC layers initialise (the
        paper; MSc's branches go with them, the paper does not say); with the CPU presets' stand-in
        (weights 'fractal'), which has no FC layers, the trunk's convolutions alone. The classifier is new."""
        pretrained = {id(p) for p in (self.backbone.features if self.trunk_only else self.backbone).parameters()}
        params = list(self.parameters())
        return [p for p in params if id(p) in pretrained], [p for p in params if id(p) not in pretrained]

    def scores(self, x):
        """fc8's scores at output stride 8: on fc7, plus (MSc) on the branches."""
        h = self.backbone(x)
        fc7 = self.classifier.in_channels
        if self.msc_classifier is None:
            return self.classifier(h)
        return self.classifier(h[:, :fc7]) + self.msc_classifier(h[:, fc7:])

    def logits(self, x):
        scores = self.scores(x)
        # ×8 bilinear, sized to the input so odd sizes (ceil-divided by the pools) come back exactly;
        # align_corners as the release's Interp layer: score i lands on pixel 8i (321 px: 41 scores), the
        # very pixel whose label it was trained against (training_loss)
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=True)

    def training_loss(self, images, labels, progress=0.0):
        """Cross-entropy at output stride 8 against the labels subsampled by 8: every 8th pixel from
        the first, as Caffe's Interp layer with shrink_factor 8 (pad_beg 0) gives for the scores' size
        ⌈H / 8⌉ (321 → 41, 128 → 16)."""
        scores = self.scores(images)
        s = self.backbone.output_stride
        target = labels[:, ::s, ::s]
        if target.shape[-2:] != scores.shape[-2:]:
            raise ValueError(f"DeepLab: scores of {tuple(scores.shape[-2:])} at stride {s} do not match the labels "
                             f"subsampled by {s}, {tuple(target.shape[-2:])} (input {tuple(images.shape[-2:])})")
        return F.cross_entropy(scores, target, ignore_index=IGNORE_INDEX), {}


def fov_receptive_field(model, count_pool5a=True):
    """Table 2's receptive-field column from a built model: the span of fc6's taps in input pixels,
    (k − 1)·dilation·output_stride, + 32 (the formula in shared/PAPERS.md that gives the paper's
    224 / 128 / 224 / 224), + 2·output_stride for the released LargeFOV's pool5a (3×3, stride 1) unless
    count_pool5a is False (the paper's Table 2 counts fc6 alone)."""
    fc6, stride = model.backbone.fc6, model.backbone.output_stride
    pool5a = 2 * stride if count_pool5a and model.backbone.pool5a is not None else 0
    return (fc6.kernel_size - 1) * fc6.dilation * stride + 32 + pool5a

