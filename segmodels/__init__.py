"""What a network is. `build_model` turns a run's model config (plain dict) into a module;
one model file per paper holds the real definitions."""


def build_backbone(cfg: dict):
    from segmodels import backbones, gcn
    opts = {k: v for k, v in cfg.items() if k != "name"}
    if cfg["name"] in ("small", "small_resnet"):
        from segmodels.pretrained import STANDIN_WEIGHTS
        weights = opts.pop("weights", None)
        if weights is not None and weights not in STANDIN_WEIGHTS:
            raise ValueError(f"the {cfg['name']} CPU backbone takes weights {' or '.join(map(repr, STANDIN_WEIGHTS))} "
                             f"(a pretrained stand-in) or none, got {weights!r}")
        net = backbones.SmallCNN(**opts) if cfg["name"] == "small" else gcn.SmallResNet(**opts)
        if weights is not None:
            from segmodels.pretrained import load_standin
            load_standin(net, cfg["name"], cfg)
        return net
    if cfg["name"] == "resnet":
        if not opts.pop("gcn", False):
            return backbones.ResNetBackbone(**opts)
        weights = opts.pop("weights", None)
        net = gcn.to_resnet50_gcn(backbones.ResNetBackbone(**opts))
        if weights is not None:  # torchvision has none of it: 'imagenet' is an error that says what to give
            backbones.load_imagenet_weights(net, net.arch, weights)
        return net
    raise ValueError(f"unknown backbone {cfg['name']!r}; choose one of: small, small_resnet, resnet")


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
    """The model of cfg as its files define it."""
    opts = {k: v for k, v in cfg.items() if k not in ("arch", "backbone")}
    arch = cfg["arch"]
    if arch == "single_head":
        from segmodels.gcn import SingleHeadNet
        return SingleHeadNet(build_backbone(cfg["backbone"]), num_classes, **opts)
    if arch == "gcn_fig2":
        from segmodels.gcn import GCNNet
        return GCNNet(build_backbone(cfg["backbone"]), num_classes, **opts)
    if arch == "layer_cascade":
        from segmodels.cascade import LayerCascade, build_trunk
        return LayerCascade(build_trunk(cfg["backbone"]), num_classes, **opts)
    if arch == "pspnet":
        from segmodels.pspnet import PSPNet
        return PSPNet(build_backbone(cfg["backbone"]), num_classes, **opts)
    if arch == "deeplab_v1":  # builds its own VGG trunk (DeepLab's pools, dilations, fc6/fc7)
        from segmodels.deeplab import DeepLabV1
        return DeepLabV1(cfg["backbone"], num_classes, **opts)
    raise ValueError(f"unknown model arch {arch!r}; choose one of: single_head, gcn_fig2, layer_cascade, pspnet, deeplab_v1")
