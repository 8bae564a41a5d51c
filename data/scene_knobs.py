"""The generator's named knobs (issue 37): each sets one property of the embedded scenes that a paper's
mechanism needs, and each is a pure function of the scene's seed. At their defaults the scenes are
exactly those of before the knobs existed (a test compares a digest of them).

- classes: object shapes (plain and context modes). 1-4 of the basic, mirror-symmetric shapes, or with
  `asymmetric` up to 40 procedural ones (VOC has 20 object classes).
- asymmetric: procedural, mirror-asymmetric shapes, each object mirrored at random. The set of scenes
  stays mirror-symmetric while no object is its own mirror image, so a flipped training image is a
  new image (with symmetric shapes a flip shows the network no shape it had not seen).
- log_radius: draw an object's radius log-uniformly in `radius`, so each octave of scale is as common
  (with radius [0.05, 0.40]: 8x in scale, 3 octaves equally).
- context_grid, contexts (context mode): the image is a G x G grid of sub-regions, each with a band of
  its own kind of scene (one of `contexts` colours) along its top and its objects below it; an
  object's class is its shape and its sub-region's kind. At G = 1 and 2 kinds this is today's single
  red or blue band. At G > 1 a global (1 x 1) pooling mixes the bands, a G x G one keeps them apart.
- ringed_share (hard mode): the share of objects that are ringed. Below 0.2 a shallow stage that cannot
  see the ring is more than 80 % sure of "plain" on every object, and wrong on the ringed ones: pixels
  decided at rho = 0.8 and wrong, the layer cascade's "too small a rho hurts".
- edge_blur, contrast (every mode): soft, low-contrast boundaries. An object is painted with an alpha
  mask blurred by a Gaussian of sigma `edge_blur` px and its texture pulled towards what lies beneath
  it (1 = as drawn); the labels keep the sharp mask. Where a CRF refines edges without reaching its
  ceiling.
"""
import functools
from dataclasses import dataclass, fields

import numpy as np
from scipy.ndimage import gaussian_filter

# the kinds of scene of the context mode: name and band colour; the first two are today's red and blue
CONTEXT_PALETTE = (("red", (0.9, 0.15, 0.1)), ("blue", (0.1, 0.25, 0.9)), ("green", (0.1, 0.75, 0.15)),
                   ("yellow", (0.95, 0.85, 0.05)), ("magenta", (0.85, 0.1, 0.8)), ("cyan", (0.05, 0.85, 0.85)),
                   ("black", (0.02, 0.02, 0.02)), ("white", (0.98, 0.98, 0.98)))
BASIC_SHAPE_COUNT = 4  # data.synthetic.SHAPES
MAX_ASYMMETRIC_SHAPES = 40
MAX_CONTEXT_GRID = 4  # 4 x 4 sub-regions of a 128-px image are 32 px: a 2-px band, objects of radius <= 9 px
MAX_LABEL = 253  # labels 254 (PAD_LABEL) and 255 (ignore) are taken


@dataclass(frozen=True)
class SceneKnobs:
    classes: int = BASIC_SHAPE_COUNT
    asymmetric: bool = False
    log_radius: bool = False
    context_grid: int = 1
    contexts: int = 2
    ringed_share: float = 0.5
    edge_blur: float = 0.0
    contrast: float = 1.0


DEFAULT_KNOBS = SceneKnobs()
KNOB_NAMES = tuple(f.name for f in fields(SceneKnobs))
# the modes each knob applies to (a non-default value in another mode is an error: it would do nothing)
KNOB_MODES = {"classes": ("plain", "context"), "asymmetric": ("plain", "context"),
              "log_radius": ("plain", "context", "hard"), "context_grid": ("context",), "contexts": ("context",),
              "ringed_share": ("hard",), "edge_blur": ("plain", "context", "hard"),
              "contrast": ("plain", "context", "hard")}


def _number(name, value, low, high, integer=False, low_open=False):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not (low < value if low_open else low <= value) \
            or value > high:
        what = "an integer" if integer else "a number"
        raise ValueError(f"synthetic dataset: option {name} must be {what} in {'(' if low_open else '['}{low}, "
                         f"{high}], got {value!r}")
    return value


def number_range(name, value, high):
    """A [low, high] option (two numbers, 0 < low <= high <= `high`) as a tuple, or a one-line ValueError."""
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and 0 < value[0] <= value[1] <= high)
    if not ok:
        raise ValueError(f"synthetic dataset: option {name} must be [low, high] with 0 < low <= high <= {high}, "
                         f"got {value!r}")
    return tuple(value)


def scene_knobs(options, mode):
    """The SceneKnobs of a data config's knob options (a dict), checked: an unknown option, a value of
    the wrong type or out of range, or a knob that does nothing in this mode is a ValueError of one line."""
    unknown = sorted(set(options) - set(KNOB_NAMES))
    if unknown:
        raise ValueError(f"synthetic dataset: unknown options {unknown}")
    for name in ("asymmetric", "log_radius"):
        if name in options and not isinstance(options[name], bool):
            raise ValueError(f"synthetic dataset: option {name} must be true or false, got {options[name]!r}")
    knobs = SceneKnobs(**options)
    most_shapes = MAX_ASYMMETRIC_SHAPES if knobs.asymmetric else BASIC_SHAPE_COUNT
    _number("classes", knobs.classes, 1, most_shapes, integer=True)
    _number("context_grid", knobs.context_grid, 1, MAX_CONTEXT_GRID, integer=True)
    _number("contexts", knobs.contexts, 2, len(CONTEXT_PALETTE), integer=True)
    _number("ringed_share", knobs.ringed_share, 0, 1)
    _number("edge_blur", knobs.edge_blur, 0, 8)
    _number("contrast", knobs.contrast, 0, 1, low_open=True)
    for name in KNOB_NAMES:
        if getattr(knobs, name) != getattr(DEFAULT_KNOBS, name) and mode not in KNOB_MODES[name]:
            raise ValueError(f"synthetic dataset: option {name} applies to the {' and '.join(KNOB_MODES[name])} "
                             f"mode{'s' if len(KNOB_MODES[name]) > 1 else ''}, not to the {mode} mode")
    if mode == "context" and knobs.classes * knobs.contexts > MAX_LABEL:
        raise ValueError(f"synthetic dataset: classes × contexts must be at most {MAX_LABEL}, "
                         f"got {knobs.classes} × {knobs.contexts}")
    return knobs


def changed_knobs(knobs):
    """The knobs that differ from their defaults, as plain values (a cache key holds only these, so
    the files of the default data keep their names)."""
    return {name: getattr(knobs, name) for name in KNOB_NAMES if getattr(knobs, name) != getattr(DEFAULT_KNOBS, name)}


def draw_radius(rng, radius, log_radius):
    """One object radius (fraction of the image) from the range `radius`: uniform, or log-uniform."""
    if log_radius:
        return float(np.exp(rng.uniform(np.log(radius[0]), np.log(radius[1]))))
    return rng.uniform(*radius)


# ---- the asymmetric shapes: a star-shaped outline r(θ) = 1 + Σ a_k cos(kθ + φ_k), scaled to radius 1
_HARMONICS = 5
_RASTER = 48  # the outline's resolution when shapes are compared with each other
_MOST_OVERLAP = 0.75  # IoU at _RASTER px: a shape against its own mirror image and every earlier shape, either way


def _outline_mask(coefficients, phases, h, w, cy, cx, r, mirror=False):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    if mirror:
        dx = -dx
    theta = np.arctan2(dy, dx)
    k = np.arange(1, _HARMONICS + 1)
    grid = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    peak = (1 + (coefficients * np.cos(np.outer(grid, k) + phases)).sum(1)).max()
    reach = (1 + (coefficients * np.cos(theta[..., None] * k + phases)).sum(-1)) / peak
    return dx ** 2 + dy ** 2 <= (r * reach) ** 2


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@functools.lru_cache(maxsize=1)
def asymmetric_shapes():
    """The outlines (coefficients, phases) of the MAX_ASYMMETRIC_SHAPES procedural shapes: fixed (one
    stream, not the scenes' seed, so a class is the same shape in every dataset), each unlike its own
    mirror image and unlike every earlier shape and its mirror image (IoU <= _MOST_OVERLAP)."""
    rng = np.random.default_rng(37)
    c = _RASTER / 2
    seen, shapes = [], []
    while len(shapes) < MAX_ASYMMETRIC_SHAPES:
        coefficients = rng.uniform(0, 0.3, _HARMONICS) / np.arange(1, _HARMONICS + 1) ** 0.5
        phases = rng.uniform(0, 2 * np.pi, _HARMONICS)
        mask = _outline_mask(coefficients, phases, _RASTER, _RASTER, c, c, c - 1)
        mirrored = mask[:, ::-1]
        if _iou(mask, mirrored) > _MOST_OVERLAP or any(
                max(_iou(mask, m), _iou(mirrored, m)) > _MOST_OVERLAP for m in seen):
            continue
        seen.append(mask)
        shapes.append((coefficients, phases))
    return tuple(shapes)


def asymmetric_shape_mask(index, h, w, cy, cx, r, mirror):
    """Boolean mask of asymmetric shape `index` of radius r (its farthest point) centred at (cy, cx)."""
    coefficients, phases = asymmetric_shapes()[index]
    return _outline_mask(coefficients, phases, h, w, cy, cx, r, mirror)


def paint(image, mask, texture, edge_blur=0.0, contrast=1.0):
    """Paint texture into image (in place) where mask is set; with a soft edge (the mask blurred by a
    Gaussian of sigma edge_blur px) and a faint texture (pulled towards what lies beneath: contrast < 1)."""
    if edge_blur == 0 and contrast == 1:
        image[mask] = texture[mask]
        return
    alpha = gaussian_filter(mask.astype(np.float32), edge_blur) if edge_blur else mask.astype(np.float32)
    image += (contrast * alpha)[..., None] * (texture - image)
