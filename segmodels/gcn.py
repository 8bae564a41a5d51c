"""GCN, "Large Kernel Matters" (Peng et al., CVPR 2017): the heads its ablations compare, the
net that puts one head on a backbone's last stage (the paper's Tables 1-5 set-up), the full
pipeline of its Fig. 2 (GCNNet), and the ResNet-GCN backbone of its Table 6 (GCNBottleneck).

All heads map c feature channels to the class scores, at the feature map's resolution.
Parameter counts in the paper exclude biases; `segmodels.base.count_weights` counts the same way.
"""
import inspect
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import Bottleneck

from segmodels.backbones import Stages, conv_bn_relu
from segmodels.base import BUILDERS, SegModel, build_backbone, builder, builds, upsample_scores
from segmodels.pretrained import standin_options, with_standin


def check_kernel(k):
    if not isinstance(k, int) or k < 3 or k % 2 == 0:
        raise ValueError(f"kernel size k must be an odd integer >= 3, got {k!r}")


class GCNBlock(nn.Module):
    """Global Convolutional Network block: (k×1 → 1×k) + (1×k → k×1), summed.
    No nonlinearity anywhere: the pair of separable convs stands in for one dense k×k conv."""

    def __init__(self, cin, cout, k):
        super().__init__()
        check_kernel(k)
        p = k // 2
        self.left = nn.Sequential(nn.Conv2d(cin, cout, (k, 1), padding=(p, 0)),
                                  nn.Conv2d(cout, cout, (1, k), padding=(0, p)))
        self.right = nn.Sequential(nn.Conv2d(cin, cout, (1, k), padding=(0, p)),
                                   nn.Conv2d(cout, cout, (k, 1), padding=(p, 0)))

    def forward(self, x):
        return self.left(x) + self.right(x)


class BoundaryRefine(nn.Module):
    """Boundary Refinement: s + conv3x3(relu(conv3x3(s))) on the score map."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, s):
        return s + self.conv2(F.relu(self.conv1(s)))


def conv_stack(cin, cout, k, width):
    """(k-1)/2 3×3 convs with no nonlinearity inside (same receptive field as one k×k):
    inner layers have `width` channels, the last maps to cout."""
    check_kernel(k)
    n = (k - 1) // 2
    chans = [cin] + [width] * (n - 1) + [cout]
    return nn.Sequential(*[nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans[:-1], chans[1:])])


def stack_width(cin, width=None, width_ratio=None):
    """The stack's inner channels: `width`, or `width_ratio` × cin rounded (the paper's Table 4
    narrows m from 2048 to 1024 and 210, i.e. ratios 1/2 and 210/2048), or cin by default."""
    if width is not None and width_ratio is not None:
        raise ValueError("give the stack's width or its width_ratio, not both")
    if width_ratio is not None:
        if not 0 < width_ratio <= 1:
            raise ValueError(f"width_ratio must be in (0, 1], got {width_ratio!r}")
        return max(1, round(cin * width_ratio))
    return width or cin


# The heads, by name: each builder(cin, num_classes, k=None[, width, width_ratio]) maps cin feature
# channels to the class scores. A head of your own: a file in segmodels/ with a function under @builds("head", ...).
@builds("head", "conv1x1")
def conv1x1_head(cin, num_classes, k=None):
    return nn.Conv2d(cin, num_classes, 1)


@builds("head", "gcn")
def gcn_head(cin, num_classes, k=None):
    return GCNBlock(cin, num_classes, k)


@builds("head", "conv")
def dense_head(cin, num_classes, k=None):
    """The 'trivial' dense k×k conv of Table 2."""
    check_kernel(k)
    return nn.Conv2d(cin, num_classes, k, padding=k // 2)


@builds("head", "stack")
def stack_head(cin, num_classes, k=None, width=None, width_ratio=None):
    return conv_stack(cin, num_classes, k, stack_width(cin, width, width_ratio))


def build_head(cin, num_classes, head="gcn", k=None, width=None, width_ratio=None, br=False):
    """A head from its config: head a registered name (conv1x1, gcn, conv, stack, or one of your own); k its
    kernel size; width (or width_ratio × cin) the stack's inner channels (default cin); br appends Boundary
    Refinement."""
    sizes = {name: value for name, value in (("width", width), ("width_ratio", width_ratio)) if value is not None}
    build = builder("head", head)  # registers every head file first: the sized heads are all known below
    if sizes and "width_ratio" not in inspect.signature(build).parameters:
        sized = [name for name, fn in BUILDERS["head"].items() if "width_ratio" in inspect.signature(fn).parameters]
        raise ValueError(f"width/width_ratio apply to the {' or '.join(map(repr, sized))} head only, not {head!r}")
    net = build(cin, num_classes, k=k, **sizes)
    return nn.Sequential(net, BoundaryRefine(num_classes)) if br else net


class SingleHeadNet(SegModel):
    """Backbone + one head on its last stage, scores upsampled bilinearly to the input size."""

    def __init__(self, backbone, num_classes, freeze_bn=False, **head_cfg):
        super().__init__()
        self.backbone = backbone
        last = list(backbone.channels)[-1]
        self.head = build_head(backbone.channels[last], num_classes, **head_cfg)
        self.freeze_batchnorm(freeze_bn)

    def logits(self, x):
        feats = self.backbone(x)
        scores = self.head(next(reversed(feats.values())))
        return upsample_scores(scores, x.shape[-2:])


@builds("arch", "single_head")
def single_head_net(backbone, num_classes, **opts):
    return SingleHeadNet(build_backbone(backbone), num_classes, **opts)


def bilinear_deconv(channels, factor):
    """A per-channel ×factor transposed conv initialised to bilinear upsampling (trainable, as the
    paper's deconvolutions; FCN's initialisation so training starts from plain upsampling)."""
    deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2)
    centre = (2 * factor - 1) / 2
    ramp = 1 - (torch.arange(2 * factor, dtype=torch.float32) - centre).abs() / factor
    with torch.no_grad():
        deconv.weight.zero_()
        deconv.bias.zero_()
        for c in range(channels):
            deconv.weight[c, c] = ramp[:, None] * ramp[None, :]
    return deconv


class GCNNet(SegModel):
    """The paper's full pipeline (Fig. 2): a GCN + BR on every backbone stage (res-2…res-5); from
    the deepest, each score map is upsampled ×2 by deconvolution, added to the next shallower one
    and refined by a BR; from the shallowest stage's stride, (×2 deconvolution → BR) steps reach
    the input size. Stages of equal stride (dilated backbones) are added without upsampling."""

    def __init__(self, backbone, num_classes, k=15, freeze_bn=False):
        super().__init__()
        self.backbone = backbone
        names = list(backbone.channels)
        strides = [backbone.strides[n] for n in names]
        if any(s & (s - 1) for s in strides):
            raise ValueError(f"GCNNet needs power-of-two stage strides, got {strides}")
        self.gcn = nn.ModuleDict({n: nn.Sequential(GCNBlock(backbone.channels[n], num_classes, k),
                                                   BoundaryRefine(num_classes)) for n in names})
        self.up, self.fuse = nn.ModuleDict(), nn.ModuleDict()
        for deep, shallow, s_deep, s_shallow in zip(names[::-1], names[-2::-1], strides[::-1], strides[-2::-1]):
            self.up[shallow] = bilinear_deconv(num_classes, s_deep // s_shallow) if s_deep > s_shallow else nn.Identity()
            self.fuse[shallow] = BoundaryRefine(num_classes)
        steps = strides[0].bit_length() - 1  # ×2 steps from the shallowest stage to the input
        self.final = nn.Sequential(*[nn.Sequential(bilinear_deconv(num_classes, 2), BoundaryRefine(num_classes))
                                     for _ in range(steps)])
        self.freeze_batchnorm(freeze_bn)

    def logits(self, x):
        feats = self.backbone(x)
        names = list(feats)
        score = self.gcn[names[-1]](feats[names[-1]])
        for name in names[-2::-1]:
            score = self.fuse[name](self.up[name](score) + self.gcn[name](feats[name]))
        score = self.final(score)
        if score.shape[-2:] != x.shape[-2:]:  # inputs not a multiple of the stride
            score = F.interpolate(score, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return score


@builds("arch", "gcn_fig2")
def gcn_net(backbone, num_classes, **opts):
    return GCNNet(build_backbone(backbone), num_classes, **opts)


# --- ResNet-GCN (Table 6) ----------------------------------------------------------------------

class GCNBottleneck(nn.Module):
    """ResNet-GCN's residual block: a bottleneck whose first two layers (1×1 reduce, 3×3) are a GCN
    pair of branches, k×1 → 1×k and 1×k → k×1, each conv-BN-ReLU (unlike the head's GCNBlock, which
    is linear), summed, then the 1×1 conv (BN) that expands to `cout`; + the shortcut, ReLU. The
    stride sits on each branch's first conv."""

    def __init__(self, cin, width, cout, k, stride=1):
        super().__init__()
        check_kernel(k)
        p = k // 2

        def branch(first, second, pad_first, pad_second):
            return nn.Sequential(nn.Conv2d(cin, width, first, stride=stride, padding=pad_first, bias=False),
                                 nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                 nn.Conv2d(width, width, second, padding=pad_second, bias=False),
                                 nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.left = branch((k, 1), (1, k), (p, 0), (0, p))
        self.right = branch((1, k), (k, 1), (0, p), (p, 0))
        self.expand = nn.Sequential(nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = projection(cin, cout, stride) or nn.Identity()

    def forward(self, x):
        return F.relu(self.expand(self.left(x) + self.right(x)) + self.shortcut(x))


def projection(cin, cout, stride):
    """The shortcut of a residual block that changes shape (1×1 conv with the stride, BN); None where
    the block keeps its input's shape (the identity)."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


def gcn_bottleneck_weights(cin, width, cout, k):
    """Conv weights of one GCNBottleneck from its layer shapes (the exact facts' formula)."""
    return 2 * (k * cin * width + k * width * width) + width * cout + (cin * cout if cin != cout else 0)


def bottleneck_stage(cin, cout, blocks, stride, gcn_k=None, gcn_width=None):
    """`blocks` residual blocks from cin to cout, the first with `stride`: torchvision's bottleneck
    (1×1, 3×3, 1×1; inner width cout / 4) or, with gcn_k, ResNet-GCN's of inner width gcn_width."""
    layers = []
    for i in range(blocks):
        c, s = (cin, stride) if i == 0 else (cout, 1)
        if gcn_k:
            layers.append(GCNBottleneck(c, gcn_width, cout, gcn_k, s))
        else:
            layers.append(Bottleneck(c, cout // Bottleneck.expansion, s, projection(c, cout, s)))
    return nn.Sequential(*layers)


# The paper's ResNet50-GCN: res-2 and res-3 as ResNet-50's; every block of res-4 (6) and res-5 (3) a
# GCNBottleneck of kernel k and inner width (res-4: k 5, 85 channels; res-5: k 7, 128), about the
# parameters of the 1×1 + 3×3 they replace. PAPERS.md gives the block, not these numbers: they are the
# reading of the paper's architecture table by peer code (yassouali/pytorch-segmentation), unconfirmed.
RESNET50_GCN = {"layer3": {"k": 5, "width": 85, "cin": 512, "cout": 1024, "blocks": 6},
                "layer4": {"k": 7, "width": 128, "cin": 1024, "cout": 2048, "blocks": 3}}


def to_resnet50_gcn(resnet):
    """A segmodels.backbones.ResNetBackbone (depth 50, output stride 32) made ResNet50-GCN in place."""
    if resnet.arch != "resnet50" or list(resnet.strides.values()) != [4, 8, 16, 32]:
        raise ValueError("ResNet50-GCN is defined for ResNet-50 at output stride 32 (the paper's)")
    for name, s in RESNET50_GCN.items():
        setattr(resnet, name, bottleneck_stage(s["cin"], s["cout"], s["blocks"], 2, s["k"], s["width"]))
    resnet.arch = "resnet50_gcn"
    return resnet


class SmallResNet(Stages):
    """The CPU presets' ResNet and ResNet-GCN for Table 6: a 3×3 conv-BN-ReLU stem (stride 2, stage
    s1), then bottleneck stages of `blocks[i]` blocks and `widths[i]` output channels, each stride 2
    (s2 /4, s3 /8 with two). gcn=True makes every block of stage i a GCNBottleneck of kernel gcn_k[i]
    and inner width gcn_width[i] (the paper replaces res-4 and res-5: the last two stages here)."""

    def __init__(self, stem=24, widths=(64, 128), blocks=(2, 2), gcn=False, gcn_k=(5, 7), gcn_width=(5, 8)):
        super().__init__()
        if not len(widths) == len(blocks) == len(gcn_k) == len(gcn_width):
            raise ValueError("SmallResNet: widths, blocks, gcn_k and gcn_width must have the same length")
        if any(w % Bottleneck.expansion for w in widths):
            raise ValueError(f"SmallResNet: widths must be multiples of {Bottleneck.expansion}, got {list(widths)}")
        self.stages = nn.ModuleDict({"s1": conv_bn_relu(3, stem, stride=2)})
        self.channels, self.strides = OrderedDict(s1=stem), OrderedDict(s1=2)
        cin = stem
        for i, (w, n, k, m) in enumerate(zip(widths, blocks, gcn_k, gcn_width), start=2):
            self.stages[f"s{i}"] = bottleneck_stage(cin, w, n, 2, k if gcn else None, m)
            self.channels[f"s{i}"], self.strides[f"s{i}"] = w, 2 ** i
            cin = w


@builds("backbone", "small_resnet")
def small_resnet(cfg):
    return with_standin(SmallResNet(**standin_options(cfg)), cfg)
