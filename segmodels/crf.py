"""DeepLab v1's fully connected CRF (Krähenbühl & Koltun, NIPS 2011): mean-field inference on a
network's class probabilities with a bilateral (appearance) and a Gaussian (smoothness) kernel and
the Potts compatibility. An evaluation option: it post-processes a trained model's output.

Two implementations of one definition:
- dense_crf: pydensecrf2 (the permutohedral lattice, O(N) per iteration); what evaluations use.
  Why a package: a lattice filter in Python would be both slow and a second copy of a subtle
  algorithm; pydensecrf2 is the maintained build of Krähenbühl's own code.
- exact_dense_crf: the same updates with the exact Gaussian kernels as N×N matrices (O(N²)): the
  test oracle on small images.

The update, as DeepLab v1 ran it: Krähenbühl's 2011 code (the densecrf DeepLab's release builds,
libDenseCRF), which normalises each pixel's message once, after filtering — the 2013 code's
NORMALIZE_AFTER ("original normalization in NIPS 11 work"), which pydensecrf2 offers beside its default
NORMALIZE_SYMMETRIC; diagonal kernels, Potts compatibility −w:
    Q⁰ = softmax(log P);   Qᵗ = softmax(log P + Σₖ wₖ · nₖ ⊙ Kₖ Qᵗ⁻¹)
with Kₖ[i, j] = exp(−|fᵢ − fⱼ|² / 2) over the kernel's scaled features (j = i included): position
/ θα and colour / θβ for the bilateral kernel (weight w1), position / θγ for the Gaussian one
(weight w2); nₖ = 1 / (Kₖ 1). The package approximates Kₖ on the lattice, so the two agree closely,
not exactly (tests/test_crf.py says how closely). (DeepLab's own program takes −score as the unary
where this takes −log softmax(score): per pixel they differ by a constant, which mean field ignores.)
"""
import numpy as np
import torch

EPS = 1e-8  # probabilities are clamped before the log: a zero probability is not an infinite energy
# the evaluation option {"crf": {...}}: w1, θα, θβ are chosen per model (cross-validated in the paper);
# w2 = 3, θγ = 3 and 10 mean-field iterations are DeepLab v1's fixed values
CRF_KEYS = {"w1": None, "theta_alpha": None, "theta_beta": None, "w2": 3.0, "theta_gamma": 3.0, "iterations": 10}


class CRFUnavailable(RuntimeError):
    """pydensecrf2 cannot be imported: the rows that need the CRF fail, the others go on."""


def check_crf(options):
    """The eval option's settings, complete and in range, or one clear ValueError."""
    if not isinstance(options, dict):
        raise ValueError(f"eval option crf must be a dict of {', '.join(CRF_KEYS)}, got {options!r}")
    unknown = sorted(set(options) - set(CRF_KEYS))
    missing = [k for k, default in CRF_KEYS.items() if default is None and k not in options]
    if unknown or missing:
        raise ValueError(f"eval option crf: unknown {unknown}, missing {missing} (keys: {', '.join(CRF_KEYS)})")
    settings = {**CRF_KEYS, **options}
    bad = [k for k, v in settings.items() if not isinstance(v, (int, float)) or v < 0 or (k.startswith("theta") and v <= 0)]
    if bad or int(settings["iterations"]) != settings["iterations"]:
        raise ValueError(f"eval option crf: weights >= 0, θ > 0 and a whole number of iterations expected, got {options}")
    return settings


def crf_labels(logits, rgb, options, extent=None):
    """Labels (N, H, W) after the CRF of each image: logits (N, C, H, W), rgb (N, H, W, 3) uint8. With
    extent (bool (N, H, W), True on each image, padding bottom/right of it), the CRF runs on each image
    cropped out of its padding (whose labels stay the network's); without, on the whole tensor."""
    settings = check_crf(options)
    probs = torch.softmax(logits.float(), 1).numpy()
    labels = probs.argmax(1)
    for i, (p, image) in enumerate(zip(probs, rgb)):
        h, w = labels.shape[1:] if extent is None else (int(extent[i].any(1).sum()), int(extent[i].any(0).sum()))
        labels[i, :h, :w] = dense_crf(p[:, :h, :w], image[:h, :w], **settings).argmax(0)
    return torch.from_numpy(labels)


def _check(probs, image):
    if probs.ndim != 3 or image.ndim != 3 or image.shape[2] != 3 or tuple(image.shape[:2]) != tuple(probs.shape[1:]):
        raise ValueError(f"CRF: probabilities (C, H, W) and an (H, W, 3) image of the same size expected, "
                         f"got {tuple(probs.shape)} and {tuple(image.shape)}")


def exact_dense_crf(probs, image, w1, theta_alpha, theta_beta, w2=3.0, theta_gamma=3.0, iterations=10):
    """Mean-field marginals (C, H, W) with exact kernels, in float64; probs (C, H, W), image (H, W, 3)
    uint8 (tensors or arrays). O((H·W)²) memory: small images only."""
    probs = torch.as_tensor(np.asarray(probs), dtype=torch.float64)
    image = torch.as_tensor(np.asarray(image), dtype=torch.float64)
    _check(probs, image)
    c, h, w = probs.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    position = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1)
    colour = image.reshape(-1, 3)
    kernels = []
    for weight, features in ((w1, torch.cat([position / theta_alpha, colour / theta_beta], 1)),
                             (w2, position / theta_gamma)):
        k = torch.exp(-torch.cdist(features, features).pow(2) / 2)
        kernels.append((weight, k, 1 / k.sum(1)))
    log_p = torch.log(probs.reshape(c, -1).clamp_min(EPS))
    q = torch.softmax(log_p, 0)
    for _ in range(iterations):
        message = sum(weight * norm * (k @ q.T).T for weight, k, norm in kernels)
        q = torch.softmax(log_p + message, 0)
    return q.reshape(c, h, w)


def dense_crf(probs, image, w1, theta_alpha, theta_beta, w2=3.0, theta_gamma=3.0, iterations=10):
    """Mean-field marginals (C, H, W) float32 numpy, by pydensecrf2; probs (C, H, W), image (H, W, 3) uint8."""
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as e:
        raise CRFUnavailable("the fully connected CRF needs the package pydensecrf2 (pip install pydensecrf2, "
                           f"in requirements.txt; it builds with gcc): {e}") from None
    probs, image = np.asarray(probs, dtype=np.float32), np.ascontiguousarray(image, dtype=np.uint8)
    _check(probs, image)
    c, h, w = probs.shape
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(np.clip(probs.reshape(c, -1), EPS, None))))
    crf.addPairwiseGaussian(sxy=theta_gamma, compat=w2, normalization=dcrf.NORMALIZE_AFTER)
    crf.addPairwiseBilateral(sxy=theta_alpha, srgb=theta_beta, rgbim=image, compat=w1,
                             normalization=dcrf.NORMALIZE_AFTER)
    return np.array(crf.inference(iterations), dtype=np.float32).reshape(c, h, w)
