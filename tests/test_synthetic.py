import numpy as np
import pytest
import torch

from data import build_dataset
from data.synthetic import SyntheticScenes, make_scene

CFG = {"name": "synthetic", "image_size": 64, "n_train": 12, "n_val": 6}


def test_scenes_are_deterministic_and_splits_differ():
    a_img, a_lab = make_scene(0, "train", 3, image_size=64)
    b_img, b_lab = make_scene(0, "train", 3, image_size=64)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    v_img, _ = make_scene(0, "val", 3, image_size=64)
    assert not np.array_equal(a_img, v_img)


def test_dataset_is_cached_and_identical(tmp_path):
    first = SyntheticScenes("train", image_size=64, n_train=12, cache_dir=str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 1
    second = SyntheticScenes("train", image_size=64, n_train=12, cache_dir=str(tmp_path))
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_train_and_val_are_disjoint():
    train, val = build_dataset(CFG, "train"), build_dataset(CFG, "val")
    flat = {bytes(x.numpy().tobytes()) for x in train.images}
    assert not any(bytes(x.numpy().tobytes()) in flat for x in val.images)


def test_labels_and_items():
    train = build_dataset(CFG, "train")
    assert train.num_classes == 5 and train.class_names[0] == "background"
    assert int(train.labels.max()) < 5
    image, label = train[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert label.shape == (64, 64) and label.dtype == torch.int64
    # augmentation is a pure function of the seed; some seeds flip, some do not
    flips = [torch.equal(train[(0, s)][1], label.flip(-1)) for s in range(20)]
    assert any(flips) and not all(flips)
    assert torch.equal(train[(0, 5)][0], train[(0, 5)][0])
    # flip false (PSPNet Table 4's baseline without augmentation): no seed mirrors, the same cached scenes
    plain = build_dataset({**CFG, "flip": False}, "train")
    assert all(torch.equal(plain[(0, s)][1], label) for s in range(20)) and torch.equal(plain.images, train.images)


def test_objects_are_large_against_the_receptive_field():
    # the class must be read from a shape larger than the small backbone's 39-px receptive field
    _, label = make_scene(0, "train", 0, image_size=128, radius=(0.22, 0.40))
    ys, xs = np.nonzero(label)
    assert xs.max() - xs.min() > 39 or ys.max() - ys.min() > 39


@pytest.mark.parametrize("bad", [{"image_size": 60}, {"colour": "red"}])
def test_bad_options_are_clear_errors(bad):
    with pytest.raises(ValueError):
        build_dataset({**CFG, **bad}, "train")


def test_unknown_dataset_and_missing_root():
    with pytest.raises(ValueError, match="choose one of"):
        build_dataset({"name": "coco"}, "train")
    with pytest.raises(ValueError, match="--data-root"):
        build_dataset({"name": "voc"}, "train")


def test_items_are_normalised_once_per_split_with_the_floats_of_one_image_at_a_time(tmp_path):
    from data import synthetic
    from data.synthetic import PIXEL_MEAN, PIXEL_STD
    data = SyntheticScenes("train", image_size=64, n_train=6, cache_dir=str(tmp_path), flip=False)
    for i in range(len(data)):
        alone = data.images[i].float().div_(255).sub_(PIXEL_MEAN).div_(PIXEL_STD)  # the computation as it was
        assert torch.equal(data[i][0], alone)
    kept = synthetic.NORMALISED["train"][1]
    again = SyntheticScenes("train", image_size=64, n_train=6, cache_dir=str(tmp_path), flip=False)
    data[0][0].add_(1)  # an item is a copy: changing it changes no other
    assert torch.equal(again[0][0], data.images[0].float().div_(255).sub_(PIXEL_MEAN).div_(PIXEL_STD))
    assert synthetic.NORMALISED["train"][1] is kept  # the same file: not normalised again
    other = SyntheticScenes("train", image_size=64, n_train=4, cache_dir=str(tmp_path), flip=False)
    assert len(other.normalised()) == 4 and synthetic.NORMALISED["train"][1] is not kept
