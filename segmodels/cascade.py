"""Deep Layer Cascade (Li, Liu, Luo, Loy, Tang, "Not All Pixels Are Equal", CVPR 2017), with the
region convolution that lets the later stages skip the pixels an earlier stage has decided.

The net is a backbone cut into three stages that all work at output stride 8; each stage ends in
a head of two 3×3 conv layers and its own classifier. At inference a pixel whose top softmax
probability at stage i exceeds ρ is decided there; stage 3 decides whatever is left, and ρ = 1
means no pixel leaves early (= deep supervision, DSN).

Region convolution. A later stage computes only at its region's positions (the pixels still
undecided, at the feature resolution). Its convolutions never run densely: the k×k input window of
every active position is gathered (with the halo the kernel needs, read from the zero-padded map)
into one matrix [N, k·k·C] and multiplied with the weight [k·k·C, C_out] — work and memory scale
with the number N of active positions. A conv layer inside a unit gives its output at the region
and 0 elsewhere (the next conv reads those zeros in its halo); a residual unit gives
h(I) = relu(I + F(I)) inside the region and I outside (I ≥ 0 after the ReLU of the previous unit,
so relu(I) = I there). A unit that changes the channel count (ResNet's projection) gives 0 outside.
A full region takes the ordinary dense path (same values, nothing to skip); an empty one does nothing.
Cost: on this project's 2-core CPU, MKL's GEMM at these shapes runs at about half the speed of
oneDNN's direct 3×3 convolution, so with 64 channels the region path beats the dense conv below
roughly a third of the positions active (benchmarks/region_conv.py measures it); gathering tiles
for oneDNN instead was slower still on the cascade's 16×16 maps. On a GPU the same code is one
index_select and one cuBLAS GEMM per conv (not yet timed there).

Layout on the region path: one zero-padded channels-last map flattened to [B·(H+2p)·(W+2p), C]
("flat map"); a region holds the flat indices of its active positions and their tap indices.
Intermediate activations inside a unit or head are "rows" [N, C] (zero outside the region).
"""
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import IGNORE_INDEX
from segmodels.backbones import ResNetBackbone, SmallCNN

SCHEDULES = ("final", "deep", "cascade", "model_cascade")


# --- region convolution ---------------------------------------------------------------------

class Region:
    """The active positions of a mask [B, H, W] on a flat map padded by `pad` on every side."""

    def __init__(self, mask, pad):
        if mask.dim() != 3 or mask.dtype != torch.bool:
            raise ValueError(f"region mask must be a bool tensor [B, H, W], got {mask.dtype} {tuple(mask.shape)}")
        self.mask, self.pad = mask, pad
        self.B, self.H, self.W = mask.shape
        self.Hp, self.Wp = self.H + 2 * pad, self.W + 2 * pad
        b, y, x = mask.nonzero(as_tuple=True)
        self.flat = (b * self.H + y) * self.W + x  # index into an unpadded [B·H·W] map
        self.pos = (b * self.Hp + y + pad) * self.Wp + x + pad  # index into the flat padded map
        self.n = len(self.pos)
        self._taps, self._row_taps, self._lut = {}, {}, None

    @property
    def numel(self):
        return self.B * self.Hp * self.Wp

    def subregion(self, keep):
        """The region of the rows where `keep` [N] is true (same padding and map)."""
        mask = torch.zeros_like(self.mask).view(-1)
        mask[self.flat[keep]] = True
        return Region(mask.view_as(self.mask), self.pad)

    def taps(self, k, dilation):
        """[N, k·k] flat indices of each active position's k×k window (row-major, as conv weights)."""
        key = (k, dilation)
        if key not in self._taps:
            r = k // 2
            if r * dilation > self.pad:
                raise ValueError(f"a {k}×{k} conv at dilation {dilation} needs padding "
                                 f"{r * dilation}, the region map has {self.pad}")
            d = torch.arange(-r, r + 1, device=self.pos.device) * dilation
            offsets = (d[:, None] * self.Wp + d[None, :]).reshape(-1)
            self._taps[key] = self.pos[:, None] + offsets[None, :]
        return self._taps[key]

    def row_taps(self, k, dilation):
        """Like taps, but as row indices into rows [N, C] extended by one zero row (index N):
        a window position outside the region reads that zero row."""
        key = (k, dilation)
        if key not in self._row_taps:
            if self._lut is None:
                self._lut = torch.full((self.numel,), self.n, dtype=torch.long, device=self.pos.device)
                self._lut[self.pos] = torch.arange(self.n, device=self.pos.device)
            self._row_taps[key] = self._lut[self.taps(k, dilation)]
        return self._row_taps[key]


def check_region_conv(conv):
    k, d = conv.kernel_size[0], conv.dilation[0]
    if (conv.kernel_size[1] != k or conv.dilation[1] != d or conv.stride != (1, 1) or conv.groups != 1
            or conv.padding != (d * (k // 2),) * 2 or k % 2 == 0):
        raise ValueError(f"region convolution needs a square odd 'same' conv with stride 1 and groups 1, got {conv}")


def region_conv(conv, region, flat=None, rows=None):
    """`conv` evaluated at the region's active positions only: [N, C_out].
    Input: a flat padded map [numel, C] (defined everywhere) or rows [N, C] (zero outside)."""
    check_region_conv(conv)
    k, d = conv.kernel_size[0], conv.dilation[0]
    if region.n == 0:
        return conv.weight.new_zeros(0, conv.out_channels)
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)  # [C_out, k·k·C_in]
    # index_select, not advanced indexing: several times faster on CPU for row gathers
    if k == 1:
        cols = rows if rows is not None else flat.index_select(0, region.pos)
    elif rows is not None:
        padded = torch.cat([rows, rows.new_zeros(1, rows.shape[1])])
        cols = padded.index_select(0, region.row_taps(k, d).view(-1)).view(region.n, -1)
    else:
        cols = flat.index_select(0, region.taps(k, d).view(-1)).view(region.n, -1)  # [N, k·k·C_in]
    out = cols @ weight.t()
    return out + conv.bias if conv.bias is not None else out


def region_bn(bn, rows):
    """BatchNorm over the region's rows (batch statistics of the region when training)."""
    training = bn.training and rows.shape[0] > 1  # one row has no variance: use the running stats
    if training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
    momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    return F.batch_norm(rows, bn.running_mean, bn.running_var, bn.weight, bn.bias, training, momentum, bn.eps)


def unit_parts(block):
    """(convs [(conv, bn)], projection (conv, bn) or None) of a residual unit: ours or
    torchvision's BasicBlock/Bottleneck. ReLU follows every conv but the last; the sum is ReLU'd."""
    if hasattr(block, "conv3"):
        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2), (block.conv3, block.bn3)]
    else:
        convs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    down = getattr(block, "downsample", None)
    return convs, (tuple(down) if down is not None else None)


def region_unit(block, flat, region):
    """One residual unit on the region: returns the new flat map (I outside the region, or 0 outside
    when the unit projects to another channel count)."""
    convs, proj = unit_parts(block)
    if region.n == 0:
        return flat if proj is None else flat.new_zeros(region.numel, proj[0].out_channels)
    rows = None
    for i, (conv, bn) in enumerate(convs):
        rows = region_bn(bn, region_conv(conv, region, flat=flat if i == 0 else None, rows=rows))
        if i < len(convs) - 1:
            rows = F.relu(rows)
    if proj is None:
        out = F.relu(flat.index_select(0, region.pos) + rows)
        return flat.index_copy_(0, region.pos, out)  # in place: autograd keeps only indices of `flat`
    conv, bn = proj
    out = F.relu(region_bn(bn, region_conv(conv, region, flat=flat)) + rows)
    return flat.new_zeros(region.numel, out.shape[1]).index_copy_(0, region.pos, out)


def region_head(head, flat, region):
    """A stage head (two conv-BN-ReLU layers, dropout, classifier) on the region: logits [N, K]."""
    rows = F.relu(region_bn(head.bn1, region_conv(head.conv1, region, flat=flat)))
    rows = F.relu(region_bn(head.bn2, region_conv(head.conv2, region, rows=rows)))
    return region_conv(head.classifier, region, rows=head.dropout(rows))


def to_flat(x, pad):
    """NCHW map → flat zero-padded channels-last map [B·(H+2p)·(W+2p), C]: always a new tensor
    (residual units write into it in place)."""
    flat = F.pad(x, (pad,) * 4).permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    return flat if pad else flat.clone()


def from_rows(rows, region):
    """Rows [N, C] → NCHW map with the rows at the region and zeros elsewhere."""
    base = rows.new_zeros(region.B * region.H * region.W, rows.shape[1])
    return base.index_copy(0, region.flat, rows).view(region.B, region.H, region.W, -1).permute(0, 3, 1, 2)


def unflatten(flat, region, channels):
    """Flat padded map → NCHW map (the padding cut off)."""
    p = region.pad
    m = flat.view(region.B, region.Hp, region.Wp, channels)
    return m[:, p:p + region.H, p:p + region.W].permute(0, 3, 1, 2)


def region_conv2d(conv, x, mask):
    """Region convolution with a dense interface (tests, benchmark): conv(x) at mask, 0 elsewhere.
    Only the active positions are computed."""
    region = Region(mask, conv.dilation[0] * (conv.kernel_size[0] // 2))
    return from_rows(region_conv(conv, region, flat=to_flat(x, region.pad)), region)


def region_residual(block, x, mask):
    """A residual unit on a region with a dense interface: h(I) inside the mask, I outside."""
    convs, proj = unit_parts(block)
    pad = max(c.dilation[0] * (c.kernel_size[0] // 2) for c, _ in convs)
    region = Region(mask, pad)
    flat = region_unit(block, to_flat(x, pad), region)
    return unflatten(flat, region, flat.shape[1])


# --- the network ------------------------------------------------------------------------------

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
        return small_trunk(**opts)
    if cfg["name"] == "resnet":
        if opts.pop("output_stride", 8) != 8:
            raise ValueError(f"layer cascade: every stage works at output stride 8, got {cfg['output_stride']}")
        return resnet_trunk(**opts)
    raise ValueError(f"layer cascade: unknown backbone {cfg['name']!r}; choose one of: small, resnet")


class LayerCascade(nn.Module):
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
    """

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
        self.cascade_start, self.freeze_bn = cascade_start, freeze_bn
        self.stride = 8
        convs = [c for stage in trunk.units[1:] for u in stage for c, _ in unit_parts(u)[0]]
        self.pad = max([c.dilation[0] * (c.kernel_size[0] // 2) for c in convs] + [1])  # heads: 3×3
        self.progress = 0.0
        self.set_eval_options()
        self._stats = {}

    # -- hooks the engine calls
    def set_eval_options(self, rho=1.0, force_region=False):
        """rho: the cascade threshold at inference. force_region: run stages 2-3 on the region path
        even when their region is every pixel (tests, benchmarks)."""
        if not 0 < rho <= 1:
            raise ValueError(f"cascade threshold rho must be in (0, 1], got {rho}")
        self.rho, self.force_region = float(rho), bool(force_region)

    def set_train_progress(self, iteration, iterations):
        self.progress = iteration / iterations

    def eval_stats(self):
        """Of the last batch: % of pixels decided at each stage and each stage's time (ms/image)."""
        return dict(self._stats)

    def train(self, mode=True):
        super().train(mode)
        if mode and self.freeze_bn:  # the paper freezes BN (batch ≈ 8)
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    # -- the cascade
    def stage1(self, x):
        feat = self.backbone.stem(x)
        for unit in self.backbone.units[0]:
            feat = unit(feat)
        return feat, self.heads[0](feat)

    def stage(self, i, feat, region):
        """Stage i (1 or 2, zero-based) on `feat`: an NCHW map when region is None (every pixel:
        dense path) or a flat padded map (region path). Returns (features, logits): NCHW and
        [B,K,h,w] on the dense path, the flat map and rows [N,K] on the region path."""
        if region is None:
            for unit in self.backbone.units[i]:
                feat = unit(feat)
            return feat, self.heads[i](feat)
        for unit in self.backbone.units[i]:
            feat = region_unit(unit, feat, region)
        return feat, region_head(self.heads[i], feat, region)

    def stage_modules(self, i):
        return ([self.backbone.stem] if i == 0 else []) + [self.backbone.units[i], self.heads[i]]

    def cascade(self, x, rho, stages=3, grad_from=0, record=False):
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
            if region is None and not (bool(undecided.all()) and not self.force_region):
                region = Region(undecided, self.pad)  # leave the dense path for the region path
                feat = to_flat(feat, self.pad)
            elif region is not None:
                region = region.subregion(undecided)
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

    def training_loss(self, images, labels):
        """The schedule's losses (see the class docstring) -> (sum, {per-stage loss and share})."""
        s = self.stride
        target = labels[:, s // 2::s, s // 2::s]
        mode = self.schedule
        if mode == "cascade" and self.progress < self.cascade_start:
            mode = "deep"  # initial training
        if mode == "final":
            feat = self.backbone.stem(images)
            for stage in self.backbone.units:
                for unit in stage:
                    feat = unit(feat)
            loss = stage_loss(self.heads[2](feat), target)
            if loss is None:
                loss = sum(p.sum() for p in self.parameters()) * 0.0
            return loss, {"loss3": loss.item()}
        first = min(int(self.progress * 3), 2) if mode == "model_cascade" else 0
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
                parts[f"loss{i + 1}"] = loss.item()
        if total is None:  # every pixel a stage received is ignored: a zero loss that keeps the graph
            total = sum(p.sum() for p in self.parameters()) * 0.0
        return total, parts

    @torch.no_grad()
    def decision_map(self, x):
        """Which stage (1, 2, 3) decides each position of the feature map [B, h, w] at self.rho."""
        out, _ = self.cascade(x, self.rho)
        stages = torch.ones(out[0][1].shape[0] * out[0][1].shape[2] * out[0][1].shape[3], dtype=torch.long,
                            device=x.device)
        for i, (region, _) in enumerate(out[1:], start=2):
            if region is None:
                stages.fill_(i)
            else:
                stages[region.flat] = i
        return stages.view(out[0][1].shape[0], *out[0][1].shape[2:])

    def forward(self, x):
        """Eval: the cascade at self.rho; the label map takes each pixel's class probabilities
        from the stage that decided it; upsampled to the input size. Returns log-probabilities."""
        out, times = self.cascade(x, self.rho, record=not self.training)
        logits1 = out[0][1]
        B, K, h, w = logits1.shape
        total = B * h * w
        probs = logits1.softmax(1).permute(0, 2, 3, 1).reshape(-1, K)
        received = [total]  # pixels each stage received
        for region, logits in out[1:]:
            if region is None:
                probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, K)
                received.append(total)
            else:
                probs = probs.index_copy(0, region.flat, logits.softmax(1))
                received.append(region.n)
        self._stats = {"stage1_pct": 100.0 * (total - received[1]) / total,
                       "stage2_pct": 100.0 * (received[1] - received[2]) / total,
                       "stage3_pct": 100.0 * received[2] / total}
        for i, t in enumerate(times, start=1):
            self._stats[f"stage{i}_ms"] = 1000.0 * t / B
        probs = probs.view(B, h, w, K).permute(0, 3, 1, 2)
        probs = F.interpolate(probs, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return probs.clamp_min(1e-12).log()
