"""Stand-ins of the real datasets for dry runs: a few images in each dataset's real on-disk layout and
at its real image sizes (VOC and ADE20K vary, Cityscapes is 2048×1024), with labels in each one's
label encoding (VOC palette PNGs and SBD .mat files, ADE20K 0–150, Cityscapes labelIds), so the
real loaders read them exactly as they read the real data. Pixels are noise; labels are blocks."""
from pathlib import Path

import numpy as np
from PIL import Image

# (width, height) of the stand-in images, in turn
SIZES = {"voc": [(500, 375), (375, 500), (500, 333), (486, 500)],
         "ade20k": [(683, 512), (512, 683), (640, 480), (600, 800)],
         "cityscapes": [(2048, 1024)]}
CITYSCAPES_IDS = (7, 8, 11, 21, 23, 24, 26)  # road, sidewalk, building, vegetation, sky, person, car


def _image(path, size, rng):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)


def _label(size, values, rng, border=None):
    """Vertical blocks of label values drawn from `values`; with border, a line of it between blocks."""
    width, height = size
    arr = np.zeros((height, width), dtype=np.uint8)
    edges = np.linspace(0, width, 5).astype(int)
    for left, right in zip(edges[:-1], edges[1:]):
        arr[:, left:right] = rng.choice(values)
        if border is not None and left:
            arr[:, left] = border
    return arr


def _png(path, arr, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(arr, mode="L") if not palette else Image.frombytes("P", arr.shape[::-1], arr.tobytes())
    if palette:
        image.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    image.save(path)


def _lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_standin(name, root, n_train=4, n_val=2, seed=0):
    """Write a stand-in of dataset `name` (voc, ade20k, cityscapes) under `root`; returns root."""
    import scipy.io
    root, rng = Path(root), np.random.default_rng(seed)
    sizes = SIZES[name]
    if name == "voc":  # VOC12 train/val lists + SBD's train/val (.mat): the 'train_aug' set
        voc, sbd = root / "VOCdevkit" / "VOC2012", root / "benchmark_RELEASE" / "dataset"
        train = [f"2007_{i:06d}" for i in range(n_train)]
        val = [f"2008_{i:06d}" for i in range(n_val)]
        _lines(voc / "ImageSets/Segmentation/train.txt", train)
        _lines(voc / "ImageSets/Segmentation/val.txt", val)
        for i, stem in enumerate(train + val):
            size = sizes[i % len(sizes)]
            _image(voc / "JPEGImages" / f"{stem}.jpg", size, rng)
            _png(voc / "SegmentationClass" / f"{stem}.png", _label(size, range(21), rng, border=255), palette=True)
        _lines(sbd / "train.txt", train)
        _lines(sbd / "val.txt", [])
        for i, stem in enumerate(train):
            size = sizes[i % len(sizes)]
            _image(sbd / "img" / f"{stem}.jpg", size, rng)
            (sbd / "cls").mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(sbd / "cls" / f"{stem}.mat", {"GTcls": {"Segmentation": _label(size, range(21), rng)}})
    elif name == "ade20k":
        base = root / "ADEChallengeData2016"
        for sub, n in (("training", n_train), ("validation", n_val)):
            for i in range(n):
                stem, size = f"ADE_{sub[:5]}_{i + 1:08d}", sizes[i % len(sizes)]
                _image(base / "images" / sub / f"{stem}.jpg", size, rng)
                _png(base / "annotations" / sub / f"{stem}.png", _label(size, range(151), rng))
    elif name == "cityscapes":
        for split, n in (("train", n_train), ("val", n_val)):
            for i in range(n):
                city, size = ("aachen", "bochum")[i % 2] if split == "train" else "frankfurt", sizes[0]
                stem = f"{city}_{i:06d}_000019"
                _image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", size, rng)
                _png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", _label(size, CITYSCAPES_IDS, rng))
    else:
        raise ValueError(f"no stand-in for dataset {name!r}; choose one of: {', '.join(SIZES)}")
    return root
