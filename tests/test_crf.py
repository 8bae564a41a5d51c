"""The fully connected CRF: the exact O(N²) oracle against hand-computed cases, pydensecrf2 against
the oracle, and a clear error without the package."""
import math
import sys

import numpy as np
import pytest

from segmodels.crf import dense_crf, exact_dense_crf


def two_colour_scene(h=12, w=16, flipped=((3, 2), (5, 4), (8, 6)), seed=0):
    """Left half red, right half blue; class 0 on the left, 1 on the right, with a few left pixels
    whose probabilities wrongly (and weakly) favour class 1. Returns probs (2, H, W), image, truth."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (200, 30, 30)
    image[:, w // 2:] = (30, 30, 200)
    truth = np.zeros((h, w), int)
    truth[:, w // 2:] = 1
    p1 = np.where(truth == 1, 0.8, 0.2) + rng.uniform(-0.05, 0.05, (h, w))
    for y, x in flipped:
        p1[y, x] = 0.6
    return np.stack([1 - p1, p1]).astype(np.float32), image, truth


def test_without_pairwise_weights_the_crf_returns_the_probabilities():
    probs, image, _ = two_colour_scene()
    q = exact_dense_crf(probs, image, w1=0.0, theta_alpha=5, theta_beta=10, w2=0.0, iterations=5)
    assert np.allclose(q.numpy(), probs, atol=1e-6)


def test_one_update_on_two_pixels_by_hand():
    # one row of two pixels of one colour, Gaussian kernel only (w2 = 1, θγ = 1): K = [[1, a], [a, 1]]
    # with a = exp(−1/2), n = 1/√(1 + a); pixel 0's message for label l is (Q₀(l) + a·Q₁(l)) / (1 + a):
    # label 0: (0.8 + 0.4a) / (1 + a) = 0.648984, label 1: (0.2 + 0.6a) / (1 + a) = 0.351016;
    # Q₀(0) = 1 / (1 + exp(−(ln 0.8 − ln 0.2 + 0.648984 − 0.351016))) = 0.843468
    probs = np.array([[[0.8, 0.4]], [[0.2, 0.6]]])
    image = np.full((1, 2, 3), 100, np.uint8)
    q = exact_dense_crf(probs, image, w1=0.0, theta_alpha=1, theta_beta=1, w2=1.0, theta_gamma=1.0, iterations=1)
    a = math.exp(-0.5)
    m0, m1 = (0.8 + 0.4 * a) / (1 + a), (0.2 + 0.6 * a) / (1 + a)
    assert (m0, m1) == pytest.approx((0.648984, 0.351016), abs=1e-6)
    assert q[0, 0, 0].item() == pytest.approx(0.843468, abs=1e-6)
    assert q[:, 0, 0].sum().item() == pytest.approx(1.0)


def test_the_bilateral_kernel_fixes_labels_inside_a_colour_region_and_keeps_the_edge():
    probs, image, truth = two_colour_scene()
    before = probs.argmax(0)
    assert (before != truth).sum() == 3
    q = exact_dense_crf(probs, image, w1=5.0, theta_alpha=4.0, theta_beta=20.0, iterations=10)
    assert np.array_equal(q.argmax(0).numpy(), truth)


def test_pydensecrf2_agrees_with_the_exact_oracle():
    probs, image, truth = two_colour_scene(h=24, w=32, flipped=((4, 3), (10, 8), (20, 12), (15, 5)))
    rng = np.random.default_rng(1)
    probs = probs * rng.uniform(0.7, 1.3, probs.shape).astype(np.float32)
    probs /= probs.sum(0, keepdims=True)
    params = dict(w1=5.0, theta_alpha=6.0, theta_beta=20.0, w2=3.0, theta_gamma=3.0, iterations=10)
    exact = exact_dense_crf(probs, image, **params).numpy()
    package = dense_crf(probs, image, **params)
    assert package.shape == exact.shape and np.allclose(package.sum(0), 1, atol=1e-4)
    # the lattice approximates the Gaussian kernels: the labels agree everywhere, the marginals within
    # 0.01 (measured on this scene with pydensecrf2 1.1: at most 0.0009, 0.00004 on average)
    assert np.array_equal(package.argmax(0), exact.argmax(0))
    assert np.array_equal(package.argmax(0), truth)
    assert np.abs(package - exact).max() < 0.01


def test_a_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    probs, image, _ = two_colour_scene()
    with pytest.raises(RuntimeError, match="needs the package pydensecrf2 .pip install pydensecrf2"):
        dense_crf(probs, image, w1=5.0, theta_alpha=4.0, theta_beta=20.0)


def test_mismatched_shapes_are_refused():
    probs, image, _ = two_colour_scene()
    with pytest.raises(ValueError, match=r"got \(2, 12, 16\) and \(12, 15, 3\)"):
        exact_dense_crf(probs, image[:, :15], w1=1.0, theta_alpha=1.0, theta_beta=1.0)
