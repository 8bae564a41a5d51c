"""The generator's named knobs (data/scene_knobs.py): at their defaults today's scenes bit for bit;
each a pure function of the seed; each does what its name says, measured on generated scenes."""
import hashlib

import numpy as np
import pytest
import torch

from data import build_dataset
from data.scene_knobs import CONTEXT_PALETTE, SceneKnobs, asymmetric_shape_mask
from data.synthetic import SHAPES, SyntheticScenes, cue_rows, make_hard_scene, make_scene, shape_mask

# the digest below was computed with the code of a7ed277, before the knobs existed
TODAYS_DIGEST = "d9f98ab5fc67390e44a3b5c5834d74db67f56774"


def test_default_knobs_reproduce_todays_data(tmp_path):
    """Every mode's scenes, a dataset's tensors, its cache file names and its (flipped) training items."""
    h = hashlib.sha1()
    for seed in (0, 1):
        for i in range(4):
            for image, label in (make_scene(seed, "train", i, 64), make_scene(seed, "val", i, 128),
                                 make_scene(seed, "train", i, 128, radius=(0.16, 0.28), context=True),
                                 make_hard_scene(seed, "val", i, 128)):
                h.update(image.tobytes())
                h.update(label.tobytes())
    for options in ({}, {"context": True}, {"hard": True}):
        ds = SyntheticScenes("train", image_size=64, n_train=6, seed=2, cache_dir=str(tmp_path), **options)
        h.update(ds.path.rsplit("/", 1)[1].encode())
        h.update(ds.images.numpy().tobytes())
        h.update(ds.labels.numpy().tobytes())
        for s in range(6):
            image, label = ds[(s, s)]
            h.update(image.numpy().tobytes())
            h.update(label.numpy().tobytes())
    assert h.hexdigest() == TODAYS_DIGEST


# each knob away from its default, with the mode (and object radius) it applies to
KNOB_CASES = [
    ("plain", {"classes": 12, "asymmetric": True}, (0.22, 0.40)),
    ("plain", {"log_radius": True}, (0.03, 0.30)),
    ("context", {"context_grid": 2, "contexts": 4}, (0.05, 0.14)),
    ("hard", {"ringed_share": 0.15}, (0.12, 0.18)),
    ("plain", {"edge_blur": 2.0, "contrast": 0.3}, (0.22, 0.40)),
]


def scene(mode, seed, index, radius, size=64, **knobs):
    if mode == "hard":
        return make_hard_scene(seed, "train", index, size, radius=radius, knobs=SceneKnobs(**knobs))
    return make_scene(seed, "train", index, size, radius=radius, context=mode == "context", knobs=SceneKnobs(**knobs))


@pytest.mark.parametrize("mode, knobs, radius", KNOB_CASES)
def test_each_knob_is_a_pure_function_of_the_seed(mode, knobs, radius):
    first = [scene(mode, 0, i, radius, **knobs) for i in range(3)]
    again = [scene(mode, 0, i, radius, **knobs) for i in range(3)]
    other = [scene(mode, 1, i, radius, **knobs) for i in range(3)]
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert all(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_asymmetric_shapes_are_unlike_their_mirror_images_and_basic_ones_are_not():
    centre = 31.5  # the raster's own mirror axis, so a mirror of the mask is exact
    for cls in range(40):
        mask = asymmetric_shape_mask(cls, 64, 64, centre, centre, 28, mirror=False)
        mirrored = asymmetric_shape_mask(cls, 64, 64, centre, centre, 28, mirror=True)
        assert np.array_equal(mirrored, mask[:, ::-1])
        assert iou(mask, mirrored) <= 0.8, cls  # a flip shows the network a shape it has not seen
    for shape in SHAPES:
        mask = shape_mask(shape, 64, 64, centre, centre, 28)
        assert np.array_equal(mask, mask[:, ::-1])  # a flip adds no new shape


def test_asymmetric_classes_occur_in_both_chiralities():
    knobs = SceneKnobs(classes=2, asymmetric=True)
    centre = 31.5
    shapes = {(c, m): asymmetric_shape_mask(c, 64, 64, centre, centre, 28, m) for c in range(2) for m in (False, True)}
    seen = set()
    for i in range(30):  # one object per scene: which of its class's two mirror images matches the label best
        _, label = make_scene(0, "train", i, 64, max_objects=1, radius=(0.44, 0.44), knobs=knobs)
        cls = int(label.max()) - 1
        ys, xs = np.nonzero(label)
        shifted = np.zeros_like(label, bool)
        shifted[ys - int(round(ys.mean() - centre)) % 64, xs - int(round(xs.mean() - centre)) % 64] = True
        seen.add(max((False, True), key=lambda m: iou(shapes[cls, m], shifted)))
    assert seen == {False, True}


def object_sizes(knobs, radius, n=150):
    """sqrt(area) in px of each single object not cut by the image's edge (128 px, one circle a scene)."""
    sizes = []
    for i in range(n):
        _, label = make_scene(0, "train", i, 128, max_objects=1, radius=radius, knobs=knobs)
        ys, xs = np.nonzero(label)
        if len(ys) and ys.min() > 0 and xs.min() > 0 and ys.max() < 127 and xs.max() < 127:
            sizes.append(np.sqrt(len(ys)))
    return np.array(sizes)


def test_log_radius_spans_eight_times_in_scale_with_every_octave_as_common():
    radius = (0.03, 0.30)
    log = object_sizes(SceneKnobs(classes=1, log_radius=True), radius)
    uniform = object_sizes(SceneKnobs(classes=1), radius)
    assert len(log) > 60 and log.max() / log.min() >= 8  # measured on the generated objects
    smallest_octave = np.sqrt(np.pi) * 128 * 2 * radius[0]  # sqrt(area) of a circle of twice the least radius
    assert (log < smallest_octave).mean() > 0.2 > (uniform < smallest_octave).mean()  # log: ~1/3.3; uniform: ~1/9


def band_kinds(image, grid):
    """The kind of scene of each sub-region, read from its band's colour."""
    side = image.shape[0] // grid
    kinds = []
    for region in range(grid * grid):
        y0, x0 = region // grid * side, region % grid * side
        colour = image[y0:y0 + cue_rows(side), x0:x0 + side].reshape(-1, 3).mean(0) / 255
        kinds.append(int(np.argmin([np.abs(colour - np.array(c)).sum() for _, c in CONTEXT_PALETTE])))
    return kinds


def test_subregion_context_takes_several_values_and_differs_across_quadrants():
    knobs = SceneKnobs(context_grid=2, contexts=4)
    differ, values = 0, set()
    for i in range(40):
        image, label = make_scene(0, "train", i, 64, max_objects=3, radius=(0.05, 0.14), context=True, knobs=knobs)
        kinds = band_kinds(image, 2)
        assert max(kinds) < 4
        values.update(kinds)
        differ += len(set(kinds)) > 1
        for region, kind in enumerate(kinds):  # each object's class carries its own quadrant's kind
            y0, x0 = region // 2 * 32, region % 2 * 32
            objects = label[y0:y0 + 32, x0:x0 + 32]
            assert set(((objects[objects > 0] - 1) // 4).tolist()) <= {kind}
    assert values == {0, 1, 2, 3} and differ >= 30  # 4 kinds; quadrants alike in 1 scene of 64 on average
    ds = SyntheticScenes("val", image_size=64, n_val=8, context=True, context_grid=2, contexts=4,
                         radius=[0.05, 0.14], classes=3)
    ds.check()
    assert ds.num_classes == 1 + 3 * 4 and ds.class_groups["context"][1:] == [k for k in range(4) for _ in range(3)]


def test_ringed_share_sets_the_share_of_ringed_objects():
    def ringed_share(knobs):
        kinds = [c for i in range(120) for c in np.unique(make_hard_scene(0, "train", i, 64, knobs=knobs)[1]) if c]
        return np.mean([c > 2 for c in kinds])
    assert ringed_share(SceneKnobs(ringed_share=0.15)) < 0.25 < 0.4 < ringed_share(SceneKnobs())


def edge_step(image, label):
    """Mean colour step between horizontally adjacent pixels across a label boundary."""
    across = label[:, 1:] != label[:, :-1]
    return np.abs(np.diff(image.astype(float), axis=1)).mean(-1)[across].mean()


def test_soft_low_contrast_edges_keep_the_labels():
    sharp = [make_scene(0, "train", i, 64) for i in range(10)]
    faint = [make_scene(0, "train", i, 64, knobs=SceneKnobs(contrast=0.3)) for i in range(10)]
    blurred = [make_scene(0, "train", i, 64, knobs=SceneKnobs(edge_blur=2.0)) for i in range(10)]
    for (s_img, s_lab), (f_img, f_lab), (b_img, b_lab) in zip(sharp, faint, blurred):
        assert np.array_equal(s_lab, f_lab) and np.array_equal(s_lab, b_lab)  # the labels keep the sharp mask
        assert np.array_equal(s_img[s_lab == 0], f_img[s_lab == 0])  # contrast leaves the background alone
        # the step across an edge: about 0.3 of the sharp one (noise adds a little); blurred, spread out
        assert 0.15 < edge_step(f_img, f_lab) / edge_step(s_img, s_lab) < 0.5
        assert edge_step(b_img, b_lab) < 0.6 * edge_step(s_img, s_lab)


def test_resize_augmentation(tmp_path):
    cfg = {"name": "synthetic", "image_size": 64, "n_train": 4, "n_val": 2, "cache_dir": str(tmp_path)}
    plain, same = build_dataset(cfg, "train"), build_dataset({**cfg, "resize": [1.0, 1.0]}, "train")
    for s in range(8):  # a factor of 1 changes nothing, and every flip stays as it was
        assert all(torch.equal(a, b) for a, b in zip(plain[(1, s)], same[(1, s)]))
    half = build_dataset({**cfg, "resize": [0.5, 0.5]}, "train")
    image, label = half[(1, 0)]
    unflipped = plain[1][1]
    flipped = not torch.equal(plain[(1, 0)][1], unflipped)
    small = (unflipped.flip(-1) if flipped else unflipped)[::2, ::2]  # nearest: every other pixel
    assert torch.equal(label[:32, :32], small)  # padded bottom/right: the shrunk scene at the top left
    assert (label[32:] == 255).all() and (label[:, 32:] == 255).all() and (image[:, 32:] == 0).all()
    double = build_dataset({**cfg, "resize": [2.0, 2.0]}, "train")
    for s in range(4):  # twice the size, cropped where the seed's draws (flip, factor, top, left) say
        gen = torch.Generator().manual_seed(s)
        flip = torch.rand((), generator=gen) < 0.5
        torch.rand((), generator=gen)  # the factor (always 2 here)
        top, left = (int(torch.randint(65, (), generator=gen)) for _ in range(2))
        whole = (unflipped.flip(-1) if flip else unflipped).repeat_interleave(2, 0).repeat_interleave(2, 1)
        assert torch.equal(double[(1, s)][1], whole[top:top + 64, left:left + 64])
    assert torch.equal(double[(1, 3)][0], double[(1, 3)][0])  # a pure function of the augmentation seed
    assert torch.equal(build_dataset({**cfg, "resize": [0.5, 0.5]}, "val")[0][1], build_dataset(cfg, "val")[0][1])


@pytest.mark.parametrize("bad", [
    {"classes": 0}, {"classes": 5}, {"classes": 41, "asymmetric": True}, {"classes": "3"}, {"classes": True},
    {"asymmetric": "yes"}, {"log_radius": 1}, {"context": True, "context_grid": 5},
    {"context": True, "contexts": 9}, {"contexts": 3}, {"hard": True, "ringed_share": 1.5},
    {"ringed_share": 0.2}, {"hard": True, "classes": 3}, {"edge_blur": -1}, {"contrast": 0}, {"contrast": 1.2},
    {"radius": [0.3, 0.2]}, {"radius": [0.0, 0.2]}, {"radius": ["a", "b"]}, {"radius": 0.2}, {"resize": [0, 2]},
    {"resize": [2, 1]}, {"resize": 2}, {"resize": [0.5, 2, 3]},
    {"context": True, "context_grid": 2}, {"context": True, "context_grid": 4, "radius": [0.01, 0.02]},
    {"blur_edges": 1}])
def test_bad_knob_values_are_one_line_errors(bad):
    with pytest.raises(ValueError) as err:
        build_dataset({"name": "synthetic", "image_size": 32, "n_train": 2, "n_val": 2, **bad}, "train")
    assert "\n" not in str(err.value) and "synthetic" in str(err.value)


def test_a_knob_gets_a_cache_file_of_its_own(tmp_path):
    default = SyntheticScenes("val", image_size=32, n_val=2, cache_dir=str(tmp_path))
    knobbed = SyntheticScenes("val", image_size=32, n_val=2, cache_dir=str(tmp_path), edge_blur=1.0)
    resized = SyntheticScenes("val", image_size=32, n_val=2, cache_dir=str(tmp_path), resize=[0.5, 2.0])
    assert knobbed.path != default.path and knobbed.params["edge_blur"] == 1.0
    assert resized.path == default.path  # the resize is drawn per item: the stored scenes are the same
    assert not torch.equal(knobbed.images, default.images) and torch.equal(knobbed.labels, default.labels)
    knobbed.check()


def test_the_knobs_pass_the_runs_data_option_check_and_a_misspelt_one_is_named_with_them():
    """engine/plans.py checks a run's data options before any run: the knobs, taken through **knob_options,
    are valid options there too."""
    from engine.plans import check_data_options
    check_data_options({"name": "synthetic", "context": True, "context_grid": 2, "contexts": 4, "resize": [0.5, 2]})
    with pytest.raises(ValueError, match=r"unknown data option\(s\) \['context_gird'\].*context_grid"):
        check_data_options({"name": "synthetic", "context_gird": 2})
