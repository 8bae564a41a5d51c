"""Deep Layer Cascade (Li, Liu, Luo, Loy, Tang, "Not All Pixels Are Equal", CVPR 2017).

The net is a backbone cut into three stages that all work at output stride 8; each stage ends in
a head of two 3×3 conv layers and its own classifier. At inference a pixel whose top softmax
probability at stage i exceeds ρ is decided there; stage 3 decides whatever is left, and ρ = 1
means no pixel leaves early (= deep supervision, DSN). The later stages run on the undecided
pixels only, through region convolution (segmodels/region_conv.py), or, when those are more than
DENSE_ABOVE of the pixels, through the dense convolutions with masks, which are faster there.
"""
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import IGNORE_INDEX
from segmodels.backbones import ResNetBackbone, SmallCNN
from segmodels.base import SegModel, builds
from segmodels.region_conv import (DENSE_ABOVE, Region, masked_head, masked_unit, region_head, region_unit, to_flat,
                                  unit_parts)

SCHEDULES = ("final", "deep", "cascade", "model_cascade")

def stage_loss(logits, target):
    """Cross-entropy of logits [B,K,h,w] (target [B,h,w]) or rows [N,K] (target [N]) averaged over
    the non-ignored pixels; None when there are none."""
    if logits.dim() == 4:
        logits, target = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1]), target.reshape(-1)
    if not bool((target != IGNORE_INDEX).any()):
        return None
    return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)


class ResidualUnit(nn.Module):
    """relu(x + BN(conv3×3(relu(BN(conv3×3(x)))))) at a given dilation (a dilated BasicBlock)."""

    def __init__(self, channels, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class StageHead(nn.Module):
    """The end of a stage: two 3×3 conv-BN-ReLU layers, optional dropout, a 1×1 classifier."""

    def __init__(self, cin, width, num_classes, dropout=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return self.classifier(self.dropout(x))


class CascadeTrunk(nn.Module):
    """The backbone cut into three stages at output stride 8: `stem` (dense, start of stage 1)
    and the residual units of each stage (units[0] ends stage 1; units[1], units[2] run on regions)."""

    def __init__(self, stem, units, channels):
        super().__init__()
        self.stem = stem
        self.units = nn.ModuleList(nn.ModuleList(u) for u in units)
        self.channels = channels  # output channels of each stage


def small_trunk(widths=(16, 32, 64), strides=(2, 2, 2), convs=(1, 1, 1), units=(1, 2, 2), dilations=(1, 2, 4)):
    """CPU trunk: a SmallCNN stem (widths, strides, convs as SmallCNN's) to output stride 8, then
    `units[i]` residual units at dilation `dilations[i]` for stage i, all at the stem's last width.
    Later stages see more context at the same resolution, as in the paper (Reduction-A/B lose
    their stride)."""
    if not (len(units) == len(dilations) == 3):
        raise ValueError(f"small cascade trunk: units and dilations need 3 entries, got {units}, {dilations}")
    if math.prod(strides) != 8:
        raise ValueError(f"small cascade trunk: the stem's strides must multiply to 8, got {strides}")
    stem = SmallCNN(widths=widths, strides=strides, convs=convs)
    width = widths[-1]
    stages = [[ResidualUnit(width, d) for _ in range(n)] for n, d in zip(units, dilations)]
    return CascadeTrunk(nn.Sequential(*stem.stages.values()), stages, [width] * 3)


def resnet_trunk(depth=101, weights=None):
    """Paper preset: a torchvision ResNet at output stride 8 in three stages — stage 1 = conv1 …
    layer2 (512 ch), stage 2 = layer3 (1024 ch, dilation 2), stage 3 = layer4 (2048 ch, dilation 4).
    (The paper cuts Inception-ResNet-v2, which torchvision does not have.)"""
    r = ResNetBackbone(depth=depth, output_stride=8, weights=weights)
    stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, *r.layer2)
    return CascadeTrunk(stem, [[], list(r.layer3), list(r.layer4)], [512, 1024, 2048])


def build_trunk(cfg):
    """The three-stage trunk from a backbone config: 'small' (CPU) or 'resnet' (paper preset)."""
    opts = {k: v for k, v in cfg.items() if k != "name"}
    if cfg["name"] == "small":
        weights = opts.pop("weights", None)
        if weights not in (None, "fractal"):
            raise ValueError(f"the small cascade trunk takes weights 'fractal' (its pretrained stand-in) or none, "
                             f"got {weights!r}")
        trunk = small_trunk(**opts)
        if weights == "fractal":
            from segmodels.pretrained import load_standin
            load_standin(trunk, "cascade", cfg)
        return trunk
    if cfg["name"] == "resnet":
        if opts.pop("output_stride", 8) != 8:
            raise ValueError(f"layer cascade: every stage works at output stride 8, got {cfg['output_stride']}")
        return resnet_trunk(**opts)
    raise ValueError(f"layer cascade: unknown backbone {cfg['name']!r}; choose one of: small, resnet")


class LayerCascade(SegModel):
    """Three-stage layer cascade; see the module docstring.

    schedule (training):
      'final'         one loss, on stage 3 only (the plain net);
      'deep'          the three stage losses jointly (deep supervision, DSN);
      'cascade'       'deep' for the first `cascade_start` of the iterations ("initial training"),
                      then "cascade training": stage i's loss and gradients cover only the pixels
                      it receives at threshold `train_rho`;
      'model_cascade' the stages trained one after another, a third of the iterations each, the
                      earlier stages frozen; stage i learns on the pixels it receives at train_rho.
    All losses are at the feature resolution against the labels sampled at each stride cell's
    centre (DeepLab's practice), averaged over the stage's own pixels.

    Evaluation options: rho, the threshold at inference; force_region runs stages 2-3 on the region
    path even when their region is every pixel, and never dispatches a large region's convolutions
    to the dense path (tests, benchmarks).
    """
    EVAL_OPTIONS = {"rho": 1.0, "force_region": False}

    def __init__(self, trunk, num_classes, head_width=32, dropout=0.0, schedule="deep", train_rho=1.0,
                 cascade_start=0.5, freeze_bn=False):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown cascade schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not 0 <= cascade_start <= 1:
            raise ValueError(f"cascade_start must be a fraction of the iterations in [0, 1], got {cascade_start}")
        if not 0 < train_rho <= 1:
            raise ValueError(f"train_rho must be in (0, 1], got {train_rho}")
        self.backbone = trunk
        self.heads = nn.ModuleList(StageHead(c, head_width, num_classes, dropout) for c in trunk.channels)
        self.num_classes, self.schedule, self.train_rho = num_classes, schedule, train_rho
        self.cascade_start = cascade_start
        self.stride = 8
        convs = [c for stage in trunk.units[1:] for u in stage for c, _ in unit_parts(u)[0]]
        self.pad = max([c.dilation[0] * (c.kernel_size[0] // 2) for c in convs] + [1])  # heads: 3×3
        self.freeze_batchnorm(freeze_bn)  # the paper freezes BN (batch ≈ 8)

    # -- the cascade
    def stage1(self, x):
        feat = self.backbone.stem(x)
        for unit in self.backbone.units[0]:
            feat = unit(feat)
        return feat, self.heads[0](feat)

    def stage(self, i, feat, region):
        """Stage i (1 or 2, zero-based) on `feat`: an NCHW map when region is None (every pixel:
        dense path) or dense (more than DENSE_ABOVE of the pixels: masked dense path), else a flat
        padded map (region path). Returns (features, logits): NCHW and [B,K,h,w] on the dense path,
        NCHW and rows [N,K] on the masked dense path, the flat map and rows [N,K] on the region path."""
        if region is None:
            for unit in self.backbone.units[i]:
                feat = unit(feat)
            return feat, self.heads[i](feat)
        unit_on, head_on = (masked_unit, masked_head) if region.dense else (region_unit, region_head)
        for unit in self.backbone.units[i]:
            feat = unit_on(unit, feat, region)
        return feat, head_on(self.heads[i], feat, region)

    def stage_modules(self, i):
        return ([self.backbone.stem] if i == 0 else []) + [self.backbone.units[i], self.heads[i]]

    def cascade(self, x, rho, stages=3, grad_from=0, record=False, force_region=False):
        """Run the first `stages` stages of the cascade at threshold rho, with autograd only from
        stage `grad_from` on (model cascade: earlier stages frozen). Returns a list per stage of
        (region, or None when the stage received every pixel; logits [B,K,h,w] or rows [N,K]) and,
        when recording, the wall time of each stage (synchronised on GPU)."""
        sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
        grad = torch.is_grad_enabled()
        times, tick = [], time.perf_counter()
        with torch.set_grad_enabled(grad and grad_from == 0):
            feat, logits = self.stage1(x)
        out = [(None, logits)]
        undecided = logits.detach().softmax(1).amax(1) <= rho  # [B,h,w]
        region = None  # None: the stage receives every pixel (dense path)
        for i in range(1, stages):
            if record:
                sync()
                times.append(time.perf_counter() - tick)
                tick = time.perf_counter()
            if region is None and not (bool(undecided.all()) and not force_region):
                # leave the dense path for the region path (or its masked dense form, for a dense region)
                region = Region(undecided, self.pad, math.inf if force_region else DENSE_ABOVE)
            elif region is not None:
                region = region.subregion(undecided)
            if region is not None and not region.dense and feat.dim() == 4:  # regions only shrink: once
                feat = to_flat(feat, self.pad)
            if region is not None and region.n == 0:  # nothing left to decide
                out.append((region, logits.new_zeros(0, self.num_classes)))
                undecided = torch.zeros(0, dtype=torch.bool, device=x.device)
                continue
            with torch.set_grad_enabled(grad and i >= grad_from):
                feat, logits = self.stage(i, feat, region)
            undecided = logits.detach().softmax(1).amax(1) <= rho  # [B,h,w] dense, [N] on a region
            out.append((region, logits))
        if record:
            sync()
            times.append(time.perf_counter() - tick)
        return out, times

    def training_loss(self, images, labels, progress=0.0):
        """The schedule's losses (see the class docstring) at `progress` (iteration / iterations)
        -> (sum, {per-stage loss and share})."""
        s = self.stride
        target = labels[:, s // 2::s, s // 2::s]
        mode = self.schedule
        if mode == "cascade" and progress < self.cascade_start:
            mode = "deep"  # initial training
        if mode == "final":
            feat = self.backbone.stem(images)
            for stage in self.backbone.units:
                for unit in stage:
                    feat = unit(feat)
            loss = stage_loss(self.heads[2](feat), target)
            if loss is None:
                loss = sum(p.sum() for p in self.parameters()) * 0.0
            return loss, {"loss3": loss.detach()}
        first = min(int(progress * 3), 2) if mode == "model_cascade" else 0
        for i in range(first):  # frozen stages keep their BN statistics
            for m in self.stage_modules(i):
                m.eval()
        out, _ = self.cascade(images, 1.0 if mode == "deep" else self.train_rho,
                              stages=first + 1 if mode == "model_cascade" else 3, grad_from=first)
        total, parts = None, {}
        for i, (region, logits) in enumerate(out):
            if region is not None:
                parts[f"share{i + 1}"] = 100.0 * region.n / region.mask.numel()
            if i < first:
                continue
            loss = stage_loss(logits, target if region is None else target.reshape(-1)[region.flat])
            if loss is not None:
                total = loss if total is None else total + loss
                parts[f"loss{i + 1}"] = loss.detach()
        if total is None:  # every pixel a stage received is ignored: a zero loss that keeps the graph
            total = sum(p.sum() for p in self.parameters()) * 0.0
        return total, parts

    def eval_options(self, given):
        opts = super().eval_options(given)
        if not 0 < opts["rho"] <= 1:
            raise ValueError(f"cascade threshold rho must be in (0, 1], got {opts['rho']}")
        return opts

    @torch.no_grad()
    def decision_map(self, x, rho):
        """Which stage (1, 2, 3) decides each position of the feature map [B, h, w] at threshold rho."""
        out, _ = self.cascade(x, self.eval_options({"rho": rho})["rho"])
        B, _, h, w = out[0][1].shape
        stages = torch.ones(B * h * w, dtype=torch.long, device=x.device)
        for i, (region, _) in enumerate(out[1:], start=2):
            if region is None:
                stages.fill_(i)
            else:
                stages[region.flat] = i
        return stages.view(B, h, w)

    def predict(self, images, **eval_options):
        """The cascade at rho: each position takes the logits of the stage that decided it, upsampled
        bilinearly to the input size. Stats of this pass: % of the positions decided at each stage
        and, in eval mode, each stage's time (ms/image)."""
        opts = self.eval_options(eval_options)
        out, times = self.cascade(images, opts["rho"], record=not self.training, force_region=opts["force_region"])
        B, K, h, w = out[0][1].shape
        total = B * h * w
        logits = out[0][1].permute(0, 2, 3, 1).reshape(-1, K)
        received = [total]  # positions each stage received
        for region, stage_logits in out[1:]:
            if region is None:
                logits = stage_logits.permute(0, 2, 3, 1).reshape(-1, K)
                received.append(total)
            else:
                logits = logits.index_copy(0, region.flat, stage_logits)
                received.append(region.n)
        stats = {"stage1_pct": 100.0 * (total - received[1]) / total,
                 "stage2_pct": 100.0 * (received[1] - received[2]) / total,
                 "stage3_pct": 100.0 * received[2] / total}
        for i, t in enumerate(times, start=1):
            stats[f"stage{i}_ms"] = 1000.0 * t / B
        logits = logits.view(B, h, w, K).permute(0, 3, 1, 2)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False), stats


@builds("arch", "layer_cascade")
def layer_cascade(backbone, num_classes, **opts):
    return LayerCascade(build_trunk(backbone), num_classes, **opts)
