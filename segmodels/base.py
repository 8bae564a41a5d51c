"""The one protocol every segmentation model follows, and the parameter counts the papers use.

    model(images)                             -> logits [B, K, H, W] at the input size
    model(images, labels, progress=it / its)  -> (loss, {part: tensor})  training
    model.predict(images, **eval_options)     -> (logits, {stat: float}) evaluation
    model.parameter_groups()                  -> (backbone parameters, new layers' parameters)

Training goes through forward so that DistributedDataParallel (which syncs gradients only through
forward) works for every model. Evaluation options (a cascade's threshold ρ) are arguments, never
state on the model, so one plan's options cannot leak into the next; statistics of a pass (the
share of pixels per stage, per-stage times) are returned by that pass. Loss parts are returned as
tensors (detached), so a training step never waits for them; the trainer reads them when it logs.
"""
import importlib
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import IGNORE_INDEX

# name → builder of each kind a model config names, filled by @builds where each is defined: an arch's
# builder(backbone config, num_classes, **options), a backbone's builder(config), a head's (see gcn.build_head)
BUILDERS = {"arch": {}, "backbone": {}, "head": {}}


def builds(kind, name):
    """Decorator: the function (or class) builds the `kind` ('arch', 'backbone' or 'head') called `name`."""
    def register(fn):
        BUILDERS[kind][name] = fn
        return fn
    return register


def builder(kind, name):
    """The builder of `kind` `name`; every file of segmodels/ is imported first if it is not registered
    yet (a model of your own is a new file there); otherwise ValueError listing what is registered."""
    if name not in BUILDERS[kind]:
        folder = os.path.dirname(os.path.abspath(__file__))
        for file in sorted(os.listdir(folder)):
            if file.endswith(".py") and not file.startswith("_"):
                importlib.import_module(f"segmodels.{file[:-3]}")
    if name not in BUILDERS[kind]:
        raise ValueError(f"unknown {'model ' if kind == 'arch' else ''}{kind} {name!r}; "
                         f"choose one of: {', '.join(BUILDERS[kind])}")
    return BUILDERS[kind][name]


def build_backbone(cfg: dict):
    """The backbone a model config's 'backbone' dict names ({'name': ..., **its options})."""
    return builder("backbone", cfg["name"])(cfg)


class _GradientAs(torch.autograd.Function):
    """Identity whose gradient goes back in the given memory format."""

    @staticmethod
    def forward(ctx, x, memory_format):
        ctx.memory_format = memory_format
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=ctx.memory_format), None


def upsample_scores(scores, size):
    """Bilinear upsampling of a model's scores [B, K, h, w] to size (H, W), align_corners=False.

    Why the two identities: with channels_last scores (the CPU presets), the loss's log-softmax hands
    its gradient back in NCHW, so the upsampling's backward took PyTorch's NCHW kernel, several times
    slower on a CPU than its channels_last one, whose result is the same bit for bit. So the gradient
    goes into the upsampling channels_last and comes out in NCHW, as it did: the layers below see the
    gradient they saw before (tests/test_reproducible.py: every network of the presets, the same
    weights), and a quick-preset PSPNet step takes ~0.9× the time."""
    if not (scores.requires_grad and scores.is_contiguous(memory_format=torch.channels_last)
            and not scores.is_contiguous()):
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
    up = F.interpolate(_GradientAs.apply(scores, torch.contiguous_format), size=size, mode="bilinear",
                       align_corners=False)
    return _GradientAs.apply(up, torch.channels_last)


class OneDNNConv1x1(nn.Conv2d):
    """A 1×1 convolution that oneDNN computes, like every other convolution of the models. Where
    PyTorch would send a 1×1 one to its fallback (on a CPU, one thread, unstrided, a batch of 2 to
    15: im2col-free MKL SGEMM on MKL's pinned SSE2 branch, engine/reproducible.py; 29–35 % of a ResNet
    stand-in's step), it is computed at dilation 2: the same function (a 1×1 kernel has no taps to
    spread), which PyTorch sends to oneDNN, forward and backward. Elsewhere it is the plain Conv2d.
    The floats are oneDNN's, hence the rows of models with 1×1 convolutions move; the guarantee is
    oneDNN's: the same numbers on any CPU of one capability (tests/test_reproducible.py). Under
    torch.compile (train.compile) it is the plain Conv2d."""

    def _conv_forward(self, x, weight, bias):
        if torch.compiler.is_compiling():  # inductor chooses its own kernels (and the thread count is
            return super()._conv_forward(x, weight, bias)  # no graph input: a graph break per layer)
        fallback = (x.device.type == "cpu" and x.dtype == torch.float32 and self.stride == (1, 1)
                    and torch.get_num_threads() == 1 and x.dim() == 4 and x.shape[0] < 16
                    and (x.shape[0] > 1 or x.numel() > 20480))  # PyTorch's use_mkldnn rule, inverted
        if not fallback:
            return super()._conv_forward(x, weight, bias)
        return F.conv2d(x, weight, bias, self.stride, 0, 2, self.groups)


def onednn_1x1(model):
    """model with every plain 1×1 convolution (no padding, no dilation, one group) an OneDNNConv1x1:
    its class changed in place, its weights and state dict kept (the subclass adds no state)."""
    for m in model.modules():
        if (type(m) is nn.Conv2d and m.kernel_size == (1, 1) and m.padding == (0, 0) and m.dilation == (1, 1)
                and m.groups == 1 and m.padding_mode == "zeros"):
            m.__class__ = OneDNNConv1x1
    return model


class SegModel(nn.Module):
    EVAL_OPTIONS = {}  # name -> default: the evaluation options predict() accepts
    freeze_bn = False  # every model's option freeze_bn (freeze_batchnorm)

    def freeze_batchnorm(self, freeze):
        """The model option freeze_bn: every BatchNorm layer keeps the statistics and affine parameters
        it starts with (ImageNet's): in eval mode even while training, its parameters not trained — as
        DeepLab v2's released code trains at small batches (use_global_stats, lr_mult 0). A model calls
        this at the end of its __init__; each paper preset says which it does (tests/test_paper_preset.py)."""
        self.freeze_bn = bool(freeze)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.requires_grad_(False)

    def train(self, mode=True):
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, images, labels=None, progress=0.0, **eval_options):
        if labels is not None:
            if eval_options:
                raise ValueError(f"evaluation options {sorted(eval_options)} given with labels (training)")
            return self.training_loss(images, labels, progress)
        return self.predict(images, **eval_options)[0]

    def eval_options(self, given):
        """The full options: `given` over the defaults; unknown names are an error."""
        unknown = set(given) - set(self.EVAL_OPTIONS)
        if unknown:
            valid = ", ".join(sorted(self.EVAL_OPTIONS)) or "none"
            raise ValueError(f"{type(self).__name__}: unknown evaluation options {sorted(unknown)}; valid: {valid}")
        return {**self.EVAL_OPTIONS, **given}

    def predict(self, images, **eval_options):
        """(logits at the input size, statistics of this pass); plain nets have neither options nor stats."""
        self.eval_options(eval_options)
        return self.logits(images), {}

    def logits(self, images):
        raise NotImplementedError

    def training_loss(self, images, labels, progress=0.0):
        """Cross-entropy of the logits; progress (iteration / iterations) is for schedules that change."""
        return F.cross_entropy(self.logits(images), labels, ignore_index=IGNORE_INDEX), {}

    def parameter_groups(self):
        """(backbone parameters, new layers' parameters), in the model's order: the backbone (what
        ImageNet weights initialise, self.backbone) trains at the base lr, the new layers at
        head_lr_mult × it (engine/step.py make_optimizer). A model whose pretrained part is
        elsewhere overrides this."""
        backbone = {id(p) for p in self.backbone.parameters()}
        params = list(self.parameters())
        return [p for p in params if id(p) in backbone], [p for p in params if id(p) not in backbone]


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def count_weights(model):
    """Parameters as the papers count them: conv/linear weights, no biases or BN."""
    return sum(p.numel() for name, p in model.named_parameters() if name.endswith("weight") and p.dim() > 1)
