"""The pretrained stand-ins of the CPU backbones: weights learnt on formula-driven images
(data/fractals.py) by `python -m engine.tools.pretrain`, kept in weights/ with a card each, loaded where a
backbone config says `"weights": "fractal"` (ImageNet's role at the CPU presets).

A stand-in's name is its kind (small CNN, cascade trunk, VGG trunk) and a hash of its architecture
config, so each distinct backbone has its own file: weights/<name>.pt and its card weights/<name>.json
(recipe, sha256 of the file, held-out accuracy, time, the command that rebuilt it). Loading checks the
file against its card: a missing, altered or damaged file is one error that says how to rebuild it.
"""
import hashlib
import json
import os

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS_DIR = os.path.join(REPO, "weights")
KINDS = ("small", "small_resnet", "cascade", "vgg")  # the trunk of: SmallCNN, SmallResNet, the cascade, DeepLab
# a backbone config's "weights" that name a stand-in, and its file suffix: the fractal classes alone, or
# with the attractor's coarse colour as a second target (engine/tools/pretrain.py COLOUR_RECIPE)
STANDIN_WEIGHTS = {"fractal": "", "fractal_colour": "-colour"}


def standin_name(kind, arch):
    """The file stem of a stand-in: kind, a hash of the architecture config (without its 'weights' key),
    and the suffix of the weights it names ('fractal' when none)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stand-in kind {kind!r}; choose one of {', '.join(KINDS)}")
    suffix = STANDIN_WEIGHTS[arch.get("weights") or "fractal"]
    arch = {k: v for k, v in arch.items() if k != "weights"}
    return f"{kind}-{hashlib.sha1(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:10]}{suffix}"


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def standin_paths(kind, arch, folder=None):
    stem = os.path.join(folder or WEIGHTS_DIR, standin_name(kind, arch))
    return stem + ".pt", stem + ".json"


def read_card(kind, arch, folder=None):
    """A stand-in's card, after checking its weights file against it; one clear error otherwise."""
    path, card_path = standin_paths(kind, arch, folder)
    rebuild = (f"rebuild it with `python -m engine.tools.pretrain --only {standin_name(kind, arch)}` (every stand-in: "
               "`python -m engine.tools.pretrain`), or restore weights/ from the repository")
    if not os.path.isfile(path) or not os.path.isfile(card_path):
        missing = path if not os.path.isfile(path) else card_path
        raise FileNotFoundError(f"pretrained stand-in weights not found: looked for {missing} (the {kind} backbone "
                                f"{json.dumps({k: v for k, v in arch.items() if k != 'weights'}, sort_keys=True)}); "
                                f"{rebuild}")
    try:
        with open(card_path) as f:
            card = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{card_path}: not a readable card ({err}): damaged; {rebuild}") from None
    if not isinstance(card, dict):
        raise ValueError(f"{card_path}: not a card (a JSON object with the weights' sha256): damaged; {rebuild}")
    sha = file_sha256(path)
    if sha != card.get("sha256"):
        raise ValueError(f"{path} does not match its card {card_path} (sha256 {sha[:12]}…, the card's "
                         f"{str(card.get('sha256'))[:12]}…): altered or damaged; {rebuild}")
    return card


def load_standin(module, kind, arch, folder=None):
    """Load the stand-in of `arch` into `module` (strict: every key, every shape); returns its card."""
    card = read_card(kind, arch, folder)
    path, _ = standin_paths(kind, arch, folder)
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return card


def standin_options(cfg):
    """A CPU backbone config's options for its class (not its name or weights), once its weights are checked:
    a stand-in's name or none."""
    weights = cfg.get("weights")
    if weights is not None and weights not in STANDIN_WEIGHTS:
        raise ValueError(f"the {cfg['name']} CPU backbone takes weights {' or '.join(map(repr, STANDIN_WEIGHTS))} "
                         f"(a pretrained stand-in) or none, got {weights!r}")
    return {k: v for k, v in cfg.items() if k not in ("name", "weights")}


def with_standin(net, cfg):
    """net with the stand-in its config names loaded, if it names one."""
    if cfg.get("weights") is not None:
        load_standin(net, cfg["name"], cfg)
    return net


def weights_id(model_cfg):
    """What a run's backbone starts from, for its row: 'fractal:<name>:<sha256[:12]>' for a stand-in,
    'imagenet', a file name, or 'none' (from scratch)."""
    backbone = model_cfg.get("backbone", {})
    weights = backbone.get("weights")
    if weights in STANDIN_WEIGHTS:
        kind, arch = standin_of(model_cfg)
        return f"fractal:{standin_name(kind, arch)}:{read_card(kind, arch)['sha256'][:12]}"
    return "none" if weights is None else str(weights if weights == "imagenet" else os.path.basename(weights))


def standin_of(model_cfg):
    """(kind, architecture config) of a model config's backbone, its 'weights' kept where it names a stand-in
    (which one): the cascade and DeepLab build their own trunks from it."""
    backbone = {k: v for k, v in model_cfg["backbone"].items() if k != "weights" or v in STANDIN_WEIGHTS}
    if model_cfg.get("arch") == "layer_cascade":
        return "cascade", backbone
    if model_cfg.get("arch") == "deeplab_v1":
        return "vgg", backbone
    return backbone["name"], backbone  # small or small_resnet
