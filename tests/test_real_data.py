"""Real-dataset loaders (VOC+SBD, ADE20K, Cityscapes) on tiny fixture trees written in their on-disk
layouts, and the shared transforms."""

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

import data
from data.ade20k import ADE20K
from data.cityscapes import Cityscapes
from data.transforms import eval_transform, to_tensor, train_transform, IMAGENET_MEAN
from data.voc import VOCSegmentation

W, H = 40, 30

# VOC ids chosen so that the train_aug logic is exercised: overlaps between lists, and VOC12 val ids
# that also appear in SBD (they must be held out).
VOC_TRAIN = ["2007_000032", "2007_000039", "2007_000063"]
VOC_VAL = ["2007_000033", "2007_000042"]
SBD_TRAIN = ["2007_000039", "2007_000033", "2008_000002"]
SBD_VAL = ["2008_000003", "2007_000042"]
TRAIN_AUG = ["2007_000032", "2007_000039", "2007_000063", "2008_000002", "2008_000003"]
VOC_LABEL_VALUE, SBD_LABEL_VALUE, AUG_LABEL_VALUE = 3, 7, 12


# ---------------------------------------------------------------- fixture writers

def write_jpg(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def label_array(value):
    """Left half `value`, right half background, a 255 border line in the middle."""
    arr = np.zeros((H, W), dtype=np.uint8)
    arr[:, : W // 2] = value
    arr[:, W // 2] = 255
    return arr


def write_palette_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
    img.putpalette(list(np.random.default_rng(1).integers(0, 256, 768, dtype=np.uint8)))
    img.save(path)


def write_gray_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def write_sbd_mat(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    # A dict is saved as a MATLAB struct, as in SBD's cls/*.mat.
    scipy.io.savemat(path, {"GTcls": {"Segmentation": arr, "Boundaries": np.zeros((1,), dtype=object),
                                      "CategoriesPresent": np.unique(arr).astype(np.uint8)}})


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_voc(root, sbd=True, aug=False):
    voc = root / "VOCdevkit" / "VOC2012"
    write_lines(voc / "ImageSets/Segmentation/train.txt", VOC_TRAIN)
    write_lines(voc / "ImageSets/Segmentation/val.txt", VOC_VAL)
    for i, id_ in enumerate(VOC_TRAIN + VOC_VAL):
        write_jpg(voc / "JPEGImages" / f"{id_}.jpg", seed=i)
        write_palette_png(voc / "SegmentationClass" / f"{id_}.png", label_array(VOC_LABEL_VALUE))
    if sbd:
        dataset = root / "benchmark_RELEASE" / "dataset"
        write_lines(dataset / "train.txt", SBD_TRAIN)
        write_lines(dataset / "val.txt", SBD_VAL)
        for i, id_ in enumerate(SBD_TRAIN + SBD_VAL):
            write_jpg(dataset / "img" / f"{id_}.jpg", seed=10 + i)
            write_sbd_mat(dataset / "cls" / f"{id_}.mat", label_array(SBD_LABEL_VALUE))
    if aug:
        for id_ in TRAIN_AUG + VOC_VAL:
            write_gray_png(root / "SegmentationClassAug" / f"{id_}.png", label_array(AUG_LABEL_VALUE))
    return root


def make_ade(root, labels=(0, 1, 150)):
    base = root / "ADEChallengeData2016"
    for sub, n in (("training", 2), ("validation", 1)):
        for i in range(n):
            stem = f"ADE_{sub[:5]}_{i + 1:08d}"
            write_jpg(base / "images" / sub / f"{stem}.jpg", seed=i)
            arr = np.full((H, W), labels[0], dtype=np.uint8)
            arr[:10], arr[10:20] = labels[1], labels[2]
            write_gray_png(base / "annotations" / sub / f"{stem}.png", arr)
    return root


def make_cityscapes(root):
    for split, cities in (("train", ("aachen", "bochum")), ("val", ("frankfurt",))):
        for city in cities:
            stem = f"{city}_000000_000019"
            write_jpg(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            arr = np.zeros((H, W), dtype=np.uint8)  # labelId 0 = unlabeled
            arr[:, 10:20], arr[:, 20:30], arr[:, 30:] = 7, 26, 33  # road, car, bicycle
            write_gray_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", arr)
    return root


def item_ids(dataset):
    return [image.stem for image, _ in dataset.items]


# ---------------------------------------------------------------- VOC

def test_voc_train_aug_is_union_minus_val(tmp_path):
    ds = VOCSegmentation(make_voc(tmp_path), "train")
    assert item_ids(ds) == TRAIN_AUG
    assert (ds.num_classes, len(ds.class_names), ds.ignore_index) == (21, 21, 255)
    sources = {image.stem: (image.parent.name, label.suffix) for image, label in ds.items}
    assert sources["2007_000039"] == ("JPEGImages", ".png")  # in VOC and SBD: VOC wins
    assert sources["2008_000002"] == ("img", ".mat")  # SBD only
    # Labels read back from both sources (index 0 is a VOC id, index 3 an SBD .mat); un-augmented
    # items are evaluation items: padded with PAD_LABEL beyond the image
    for index, value in ((0, VOC_LABEL_VALUE), (3, SBD_LABEL_VALUE)):
        _, label = ds[index]
        assert set(label.unique().tolist()) == {0, value, 255, data.PAD_LABEL}
        assert set(label[:H, :W].unique().tolist()) == {0, value, 255}


def test_voc_prefers_segmentation_class_aug(tmp_path):
    ds = VOCSegmentation(make_voc(tmp_path, aug=True), "train")
    assert item_ids(ds) == TRAIN_AUG
    assert all(label.parent.name == "SegmentationClassAug" for _, label in ds.items)
    assert AUG_LABEL_VALUE in ds[0][1].unique().tolist()


def test_voc_aug_without_sbd_gives_train_aug(tmp_path):
    root = make_voc(tmp_path, sbd=False, aug=True)
    # The aug ids are train_aug + val; their images must all be in JPEGImages (as in the real VOC2012).
    with pytest.raises(FileNotFoundError, match="2008_000002.jpg"):
        VOCSegmentation(root, "train")
    for id_ in TRAIN_AUG[3:]:
        write_jpg(root / "VOCdevkit/VOC2012/JPEGImages" / f"{id_}.jpg")
    ds = VOCSegmentation(root, "train")
    assert item_ids(ds) == TRAIN_AUG


def test_voc_without_sbd_warns_and_uses_voc_train(tmp_path):
    with pytest.warns(UserWarning, match="SBD not found"):
        ds = VOCSegmentation(make_voc(tmp_path, sbd=False), "train")
    assert item_ids(ds) == VOC_TRAIN


def test_voc_val_is_voc12_val_padded_beyond_the_image(tmp_path):
    ds = VOCSegmentation(make_voc(tmp_path), "val", crop_size=64)
    assert item_ids(ds) == VOC_VAL
    image, label = ds[0]
    assert image.shape == (3, 64, 64) and label.shape == (64, 64)
    assert image.dtype == torch.float32 and label.dtype == torch.int64
    assert (label[H:] == data.PAD_LABEL).all() and (label[:, W:] == data.PAD_LABEL).all()
    assert (image[:, H:] == 0).all() and (image[:, :, W:] == 0).all()
    assert (label[:H, : W // 2] == VOC_LABEL_VALUE).all()
    # A seed does not augment a val item.
    assert torch.equal(ds[(0, 5)][1], label)


def test_build_dataset_voc_train_crops(tmp_path):
    ds = data.build_dataset({"name": "voc", "root": str(make_voc(tmp_path)), "crop_size": 64}, "train")
    assert isinstance(ds, VOCSegmentation) and len(ds) == len(TRAIN_AUG)
    image, label = ds[(0, 123)]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert label.shape == (64, 64) and label.dtype == torch.int64


def test_train_items_are_a_pure_function_of_the_seed(tmp_path):
    cfg = {"name": "voc", "root": str(make_voc(tmp_path)), "crop_size": 32, "scale": [0.5, 2.0],
           "rotate": 10.0, "blur": True}
    ds = data.build_dataset(cfg, "train")
    first = ds[(1, 42)]
    again = data.build_dataset(cfg, "train")[(1, 42)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    others = [ds[(1, seed)] for seed in (1, 2, 3)]
    assert any(not torch.equal(first[0], other[0]) for other in others)
    for image, label in [first, *others]:
        assert image.shape == (3, 32, 32)
        assert set(label.unique().tolist()) <= {0, VOC_LABEL_VALUE, 255}


def test_voc_missing_root_names_paths_and_how_to_get(tmp_path):
    for split in ("train", "val"):
        with pytest.raises(FileNotFoundError) as err:
            VOCSegmentation(tmp_path / "nowhere", split)
        message = str(err.value)
        assert str(tmp_path / "nowhere" / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt") \
            in message
        assert "VOCtrainval_11-May-2012.tar" in message and "benchmark.tgz" in message
        assert "--data-root" in message
    with pytest.raises(ValueError, match="--data-root"):
        data.build_dataset({"name": "voc", "root": None}, "train")


def test_bad_label_value_names_the_file(tmp_path):
    root = make_voc(tmp_path)
    bad = root / "VOCdevkit/VOC2012/SegmentationClass" / f"{VOC_VAL[0]}.png"
    write_palette_png(bad, label_array(30))
    ds = VOCSegmentation(root, "val")
    with pytest.raises(ValueError, match=r"has value 30; valid are 0\.\.20 and 255") as err:
        ds[0]
    assert str(bad) in str(err.value)


def test_corrupt_files_name_the_path(tmp_path):
    root = make_voc(tmp_path)
    ds = VOCSegmentation(root, "train")
    image_path, _ = ds.items[0]
    image_path.write_bytes(b"this is not a jpeg")
    with pytest.raises(OSError) as err:
        ds[0]
    assert str(image_path) in str(err.value)

    mat_path = ds.items[3][1]
    assert mat_path.suffix == ".mat"
    mat_path.write_bytes(b"not a mat file either")
    with pytest.raises(OSError) as err:
        ds[3]
    assert str(mat_path) in str(err.value)


def test_rgb_label_is_rejected(tmp_path):
    root = make_voc(tmp_path)
    bad = root / "VOCdevkit/VOC2012/SegmentationClass" / f"{VOC_VAL[0]}.png"
    Image.new("RGB", (W, H), (128, 0, 0)).save(bad)
    with pytest.raises(ValueError, match="single-channel"):
        VOCSegmentation(root, "val")[0]


# ---------------------------------------------------------------- ADE20K

def test_ade20k_maps_zero_to_ignore_and_shifts_classes(tmp_path):
    make_ade(tmp_path)
    for root in (tmp_path, tmp_path / "ADEChallengeData2016"):  # parent or the folder itself
        train, val = ADE20K(root, "train"), ADE20K(root, "val")
        assert (len(train), len(val)) == (2, 1)
    assert (train.num_classes, len(train.class_names)) == (150, 150)
    _, label = val[0]
    assert (label[:10, :W] == 0).all()  # stored 1 -> class 0
    assert (label[10:20, :W] == 149).all()  # stored 150 -> class 149
    assert (label[20:H, :W] == 255).all()  # stored 0 ("other") -> ignore


def test_ade20k_out_of_range_label(tmp_path):
    ds = ADE20K(make_ade(tmp_path, labels=(0, 1, 200)), "val")
    with pytest.raises(ValueError, match=r"has value 199 \(stored as 200\); valid are 0\.\.149 and 255"):
        ds[0]


def test_ade20k_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        ADE20K(tmp_path, "train")
    message = str(err.value)
    assert str(tmp_path / "ADEChallengeData2016" / "images" / "training") in message
    assert "ADEChallengeData2016.zip" in message


# ---------------------------------------------------------------- Cityscapes

def test_cityscapes_maps_label_ids_to_train_ids(tmp_path):
    root = make_cityscapes(tmp_path)
    train, val = Cityscapes(root, "train"), Cityscapes(root, "val")
    assert (len(train), len(val)) == (2, 1)
    assert (train.num_classes, train.class_names[0], train.class_names[13]) == (19, "road", "car")
    _, label = val[0]
    assert (label[:H, :10] == 255).all()  # labelId 0 (unlabeled) -> ignore
    assert (label[:H, 10:20] == 0).all()  # 7 road -> 0
    assert (label[:H, 20:30] == 13).all()  # 26 car -> 13
    assert (label[:H, 30:W] == 18).all()  # 33 bicycle -> 18
    image, label = train[(0, 9)]
    assert image.shape == (3, 512, 512) and label.shape == (512, 512)


def test_cityscapes_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        Cityscapes(tmp_path, "val")
    message = str(err.value)
    assert str(tmp_path / "leftImg8bit" / "val") in message and str(tmp_path / "gtFine" / "val") in message
    assert "leftImg8bit_trainvaltest.zip" in message and "gtFine_trainvaltest.zip" in message


# ---------------------------------------------------------------- transforms

def test_to_tensor_normalises_the_mean_to_zero():
    mean_rgb = tuple(round(255 * m) for m in IMAGENET_MEAN)
    tensor = to_tensor(Image.new("RGB", (4, 3), mean_rgb))
    assert tensor.shape == (3, 3, 4) and tensor.abs().max() < 0.02


def test_train_transform_rotation_fills_label_with_ignore():
    image = Image.fromarray(np.full((H, W, 3), 255, dtype=np.uint8))  # white: ~2.2..2.6 normalised
    label = np.full((H, W), 5, dtype=np.uint8)
    out = [train_transform(image, label, torch.Generator().manual_seed(s), crop_size=W, scale=None,
                           rotate=45.0, blur=True) for s in (0, 0, 1)]
    assert torch.equal(out[0][1], out[1][1]) and torch.equal(out[0][0], out[1][0])
    for img, lab in out:
        assert img.shape == (3, W, W) and set(lab.unique().tolist()) == {5, 255}
        # Rotation fill and padding are the mean (0), apart from a bilinear seam at the edges.
        assert img[:, lab == 255].abs().median() < 0.1


def test_eval_transform_pads_to_multiple():
    image = Image.new("RGB", (W, H))
    img, lab = eval_transform(image, np.zeros((H, W), np.uint8), pad_to=None)
    assert img.shape == (3, 32, 64) and lab.shape == (32, 64)
    assert (lab[H:] == data.PAD_LABEL).all() and (lab[:, W:] == data.PAD_LABEL).all() and (lab[:H, :W] == 0).all()
    img, lab = eval_transform(image, np.zeros((H, W), np.uint8), pad_to=50, multiple=8)
    assert lab.shape == (56, 56)
