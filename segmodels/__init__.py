"""What a network is. `build_model` turns a run's model config (plain dict) into a module;
one model file per paper holds the real definitions, and registers its archs, backbones and heads by name
(segmodels/base.py builds): a model of your own is a new file here."""
from segmodels.base import build_backbone, builder  # noqa: F401  (build_backbone: used from here)


def without_weights(cfg: dict) -> dict:
    """A copy of a model config whose backbone reads no weights file (random init): for networks built
    only for their shapes or cost (the report, dry runs, benchmarks)."""
    return {**cfg, "backbone": {k: v for k, v in cfg["backbone"].items() if k != "weights"}}


def build_model(cfg: dict, num_classes: int):
    """cfg = {'arch': ..., 'backbone': {...}, **arch options}; every 1×1 convolution computed by oneDNN
    (segmodels/base.py OneDNNConv1x1)."""
    from segmodels.base import onednn_1x1
    return onednn_1x1(build_architecture(cfg, num_classes))


def build_architecture(cfg: dict, num_classes: int):
    """The model of cfg as its files define it (each arch registered by @builds in its file)."""
    opts = {k: v for k, v in cfg.items() if k not in ("arch", "backbone")}
    return builder("arch", cfg["arch"])(cfg["backbone"], num_classes, **opts)
