"""PSPNet, "Pyramid Scene Parsing Network" (Zhao et al., CVPR 2017): the pyramid pooling module,
the dilated-FCN head it sits in front of, and the auxiliary FCN head used only in training.

Shapes follow the authors' PyTorch code (hszhao/semseg): at paper width the last stage has 2048
channels, each of the N pyramid levels is reduced to 2048 / N by a 1×1 conv + BN + ReLU ("DR"),
the levels are upsampled and concatenated with the input map (2048 + 4 × 512 = 4096 channels), then
a 3×3 conv to 512 + BN + ReLU + dropout 0.1 and a 1×1 classifier. Without the module (`bins=()`)
the net is the paper's baseline, a dilated FCN whose head is that same 3×3 conv + classifier on
the last stage — torchvision's FCNHead. The auxiliary head on the stage before last is the same
kind of head (1024 → 256 → classes at paper width) and its loss is weighted by α.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import IGNORE_INDEX
from segmodels.base import SegModel, build_backbone, builds, upsample_scores

POOLS = ("avg", "max", "none")


def fcn_head(cin, width, num_classes, dropout=0.1):
    """3×3 conv (no bias: BN follows) + BN + ReLU + dropout + 1×1 classifier."""
    return nn.Sequential(
        nn.Conv2d(cin, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(width, num_classes, 1),
    )


class PyramidPooling(nn.Module):
    """Pool the map into b×b bins for each b in `bins` (adaptive average or max pooling), project each
    level (1×1 conv + BN + ReLU), upsample bilinearly and concatenate with the input.

    The projection: with dr (dimension reduction) to cin / N channels, as the authors' code always
    does; without it, the paper's "without DR" read two ways: project=False concatenates the raw pooled
    maps (cin channels each, no conv), project=True projects each level to cin channels ("projected,
    not reduced"). project defaults to dr.

    pool='none' skips the pooling: each level is then a 1×1 conv branch at full resolution. It has
    exactly the parameters of the pooled module but no context beyond the input map's own receptive
    field: the parameter-matched control.
    """

    def __init__(self, cin, bins=(1, 2, 3, 6), pool="avg", dr=True, project=None):
        super().__init__()
        bins = tuple(bins)
        if not bins or any(not isinstance(b, int) or b < 1 for b in bins):
            raise ValueError(f"PyramidPooling: bins must be a non-empty list of positive ints, got {bins!r}")
        if pool not in POOLS:
            raise ValueError(f"PyramidPooling: pool must be one of {POOLS}, got {pool!r}")
        if dr and cin % len(bins):
            raise ValueError(f"PyramidPooling: with DR, {cin} input channels must divide by the "
                             f"{len(bins)} levels")
        project = dr if project is None else project
        if dr and not project:
            raise ValueError("PyramidPooling: dimension reduction is a projection (dr needs project)")
        self.bins, self.pool, self.dr = bins, pool, dr
        level_channels = cin // len(bins) if dr else cin
        self.levels = nn.ModuleList()
        for b in bins:
            if pool == "avg":
                layers = [nn.AdaptiveAvgPool2d(b)]
            elif pool == "max":
                layers = [nn.AdaptiveMaxPool2d(b)]
            else:
                layers = []
            if project:
                layers += [nn.Conv2d(cin, level_channels, 1, bias=False), nn.BatchNorm2d(level_channels),
                           nn.ReLU(inplace=True)]
            self.levels.append(nn.Sequential(*layers))
        self.out_channels = cin + len(bins) * level_channels

    def forward(self, x):
        size = x.shape[-2:]
        # align_corners=True as in the authors' code (their Caffe Interp layer behaves so)
        return torch.cat([x] + [F.interpolate(level(x), size=size, mode="bilinear", align_corners=True)
                                for level in self.levels], dim=1)


class PSPNet(SegModel):
    """Backbone + (optional) pyramid pooling + FCN head; an auxiliary FCN head on the stage before
    last when aux_weight > 0. model(x) returns the main logits at input size (train and eval);
    the auxiliary head runs only in training_loss, so it costs nothing at test time.

    bins: () for the baseline (no module), (1,) or (1, 2, 3, 6) etc.; pool: 'avg', 'max' or
    'none' (the control, see PyramidPooling); dr: dimension reduction; project: the levels' projection
    without dr (PyramidPooling); head_width: the 3×3 conv's channels (512 in the paper); aux_width: the
    auxiliary head's (256 in the paper); freeze_bn: SegModel.freeze_batchnorm.

    Evaluation options, the authors' test protocol (hszhao/semseg's tool/test.py, as their Caffe code's):
    scales, the factors the image is resized by, and flip, the mirrored image's pass averaged with the
    plain one's, softmax with softmax; each scale's probabilities are resized to the input and averaged
    over the scales. The defaults, (1,) and no flip, are the plain single-scale pass (every PSPNet table
    here tests with flip, as the authors do at every scale). base_size and crop (the paper preset: 512
    and 473, the authors' ADE20K test settings): each scale s resizes the image's long side to
    base_size·s, and the network sees crop × crop windows slid over it (sliding_probabilities); None:
    the whole image, resized by the factor s.
    """
    EVAL_OPTIONS = {"scales": (1.0,), "flip": False, "base_size": None, "crop": None}

    def __init__(self, backbone, num_classes, bins=(1, 2, 3, 6), pool="avg", dr=True, project=None, head_width=512,
                 dropout=0.1, aux_weight=0.4, aux_width=256, freeze_bn=False):
        super().__init__()
        stages = list(backbone.channels)
        if aux_weight < 0:
            raise ValueError(f"PSPNet: aux_weight must be >= 0, got {aux_weight}")
        if aux_weight > 0 and len(stages) < 2:
            raise ValueError("PSPNet: an auxiliary head needs a backbone with at least two stages")
        self.backbone = backbone
        self.aux_weight = float(aux_weight)
        cin = backbone.channels[stages[-1]]
        self.ppm = PyramidPooling(cin, bins, pool, dr, project) if bins else None
        self.head = fcn_head(self.ppm.out_channels if self.ppm else cin, head_width, num_classes, dropout)
        self.aux = (fcn_head(backbone.channels[stages[-2]], aux_width, num_classes, dropout)
                    if aux_weight > 0 else None)
        self.freeze_batchnorm(freeze_bn)

    def _main(self, feats):
        x = next(reversed(feats.values()))
        return self.head(self.ppm(x) if self.ppm is not None else x)

    def logits(self, x):
        logits = self._main(self.backbone(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def predict(self, images, **eval_options):
        """(log of the mean softmax over scales (and flips), {}); the plain logits at the defaults."""
        opts = self.eval_options(eval_options)
        scales, flip = tuple(float(s) for s in opts["scales"]), bool(opts["flip"])
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"PSPNet: scales must be positive factors, got {opts['scales']!r}")
        base_size, crop = opts["base_size"], opts["crop"]
        for name, value in (("base_size", base_size), ("crop", crop)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"PSPNet: {name} must be a positive whole number of pixels or None, got {value!r}")
        if scales == (1.0,) and not flip and base_size is None and crop is None:
            return self.logits(images), {}
        size, probs = images.shape[-2:], 0
        for s in scales:
            if base_size is not None:  # the long side to base_size·s, the aspect kept (semseg's test)
                long = round(base_size * s)
                h, w = size
                shape = (long, round(long / h * w)) if h > w else (round(long / w * h), long)
                x = F.interpolate(images, size=shape, mode="bilinear", align_corners=False)
            else:
                x = images if s == 1 else F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=False)
            p = self.sliding_probabilities(x, crop, flip) if crop is not None else self.probabilities(x, flip)
            probs = probs + F.interpolate(p, size=size, mode="bilinear", align_corners=False)
        return (probs / len(scales)).log(), {}

    def sliding_probabilities(self, x, crop, flip, stride_rate=2 / 3):
        """semseg's scale_process: x padded (with 0, the mean pixel once normalised) to at least crop × crop,
        centred; crop × crop windows every ⌈crop · 2/3⌉ px (the last one flush with the far edge); each pixel's
        probabilities averaged over the windows that hold it; the padding cut off again."""
        h, w = x.shape[-2:]
        pad_h, pad_w = max(crop - h, 0), max(crop - w, 0)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        big_h, big_w = x.shape[-2:]
        stride = math.ceil(crop * stride_rate)
        probs, count = None, torch.zeros(big_h, big_w, device=x.device)
        for i in range(math.ceil((big_h - crop) / stride) + 1):
            for j in range(math.ceil((big_w - crop) / stride) + 1):
                bottom, right = min(i * stride + crop, big_h), min(j * stride + crop, big_w)
                window = (slice(None), slice(None), slice(bottom - crop, bottom), slice(right - crop, right))
                p = self.probabilities(x[window], flip)
                if probs is None:
                    probs = torch.zeros(x.shape[0], p.shape[1], big_h, big_w, device=x.device, dtype=p.dtype)
                probs[window] += p
                count[bottom - crop:bottom, right - crop:right] += 1
        probs = probs / count
        return probs[..., pad_h // 2:pad_h // 2 + h, pad_w // 2:pad_w // 2 + w]

    def probabilities(self, x, flip):
        """The softmax of one pass at x's size; with flip, averaged with the mirrored image's (semseg's net_process)."""
        probs = self.logits(x).softmax(1)
        return (probs + self.logits(x.flip(-1)).softmax(1).flip(-1)) / 2 if flip else probs

    def training_loss(self, images, labels, progress=0.0):
        """Main cross-entropy + α × the auxiliary head's (on the stage before last)."""
        feats = self.backbone(images)
        size = images.shape[-2:]
        main = upsample_scores(self._main(feats), size)
        main_loss = F.cross_entropy(main, labels, ignore_index=IGNORE_INDEX)
        if self.aux is None:
            return main_loss, {"main_loss": main_loss.detach()}
        aux_in = list(feats.values())[-2]
        aux = upsample_scores(self.aux(aux_in), size)
        aux_loss = F.cross_entropy(aux, labels, ignore_index=IGNORE_INDEX)
        return main_loss + self.aux_weight * aux_loss, {"main_loss": main_loss.detach(),
                                                        "aux_loss": aux_loss.detach()}


@builds("arch", "pspnet")
def pspnet(backbone, num_classes, **opts):
    return PSPNet(build_backbone(backbone), num_classes, **opts)
