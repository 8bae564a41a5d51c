"""What every real dataset shares: a folder of (image, label) file pairs, read, checked and turned
into training crops or padded evaluation images (data/transforms.py), and the one error a missing
dataset gets (what was looked for, and how to get it). voc.py, ade20k.py and cityscapes.py only say
where their files lie and what their labels mean.
"""
import concurrent.futures as cf
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data import IGNORE_INDEX, cache_dir, split_item
from data.transforms import eval_transform, to_rgb, train_transform


def missing_data_error(dataset: str, looked_for, how_to_get: str) -> FileNotFoundError:
    """The error for a dataset that is not where --data-root says: every path looked for, and how
    to get the data (one line, as the command line prints it)."""
    paths = ", ".join(str(p) for p in looked_for)
    return FileNotFoundError(
        f"{dataset} not found; looked for: {paths}. {how_to_get} "
        f"Extract it under the folder given as --data-root.")


def pair_files(image_dir: Path, image_glob: str, label_path_for, dataset: str, how_to_get: str) -> list:
    """[(image, label)] for every image matching image_glob under image_dir (sorted), with
    label_path_for(image_path) giving its label file; a missing label is an error, not a skip."""
    items = []
    for image in sorted(image_dir.glob(image_glob)):
        label = label_path_for(image)
        if not label.is_file():
            raise missing_data_error(f"{dataset} label for image {image}", [label], how_to_get)
        items.append((image, label))
    return items


def read_image(path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")  # convert() loads, so a truncated file fails here
    except (OSError, ValueError, SyntaxError) as err:
        raise OSError(f"cannot read image file {path}: {err}") from err


def read_label_png(path) -> np.ndarray:
    """A single-channel label PNG as its stored values (palette PNGs give their indices)."""
    try:
        with Image.open(path) as img:
            img.load()
            mode, values = img.mode, np.array(img)
    except (OSError, ValueError, SyntaxError) as err:
        raise OSError(f"cannot read label file {path}: {err}") from err
    if values.ndim != 2:
        raise ValueError(f"label file {path} is not a single-channel label image (PIL mode {mode}); "
                         f"expected class indices (palette or grayscale PNG)")
    return values


class LabelledImageFolder(torch.utils.data.Dataset):
    """A list of (image_path, label_path) pairs plus the decoding and train/eval handling that all
    real datasets share. Subclasses set num_classes / class_names and implement find_items; they
    may set label_lut (stored value -> train id) and override read_raw_label."""
    num_classes: int
    class_names: tuple
    ignore_index = IGNORE_INDEX
    label_lut = None  # uint8 [256] array mapping stored label values to train ids; None = identity

    def __init__(self, root, split, crop_size=512, scale=None, flip=True, rotate=0.0, blur=False):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if scale is not None:
            scale = (float(scale[0]), float(scale[1]))
            if not 0 < scale[0] <= scale[1]:
                raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
        self.root = Path(root)
        self.split = split
        self.crop_size = int(crop_size)
        self.scale, self.flip, self.rotate, self.blur = scale, bool(flip), float(rotate), bool(blur)
        self.items = [(Path(img), Path(lab)) for img, lab in self.find_items(self.root, split)]
        if not self.items:
            raise FileNotFoundError(f"{type(self).__name__} found no {split} images under {self.root}")

    def find_items(self, root: Path, split: str) -> list:
        """[(image_path, label_path)] for the split; raise missing_data_error(...) if absent."""
        raise NotImplementedError

    def to_rgb(self, images: torch.Tensor) -> np.ndarray:
        """A batch of this dataset's images as uint8 [N,H,W,3] (padding comes back black)."""
        return to_rgb(images)

    def read_raw_label(self, path: Path) -> np.ndarray:
        return read_label_png(path)

    def load_label(self, path: Path) -> np.ndarray:
        """Label file -> uint8 [H,W] of train ids in 0..num_classes-1 or ignore_index."""
        raw = np.asarray(self.read_raw_label(path))
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            bad = raw[(raw < 0) | (raw > 255)].flat[0]
            raise ValueError(f"label file {path} has value {bad}; "
                             f"valid are 0..{self.num_classes - 1} and {self.ignore_index}")
        raw = raw.astype(np.uint8)
        label = raw if self.label_lut is None else self.label_lut[raw]
        bad = (label >= self.num_classes) & (label != self.ignore_index)
        if bad.any():
            value, stored = int(label[bad].flat[0]), int(raw[bad].flat[0])
            stored_note = f" (stored as {stored})" if stored != value else ""
            raise ValueError(f"label file {path} has value {value}{stored_note}; "
                             f"valid are 0..{self.num_classes - 1} and {self.ignore_index}")
        return label

    def check(self):
        """Fail before any training on a file the split would fail on later: every image must exist
        and decode (JPEGs are decoded at 1/8 scale: cheap, and a truncated file still fails; other
        formats are verified), every label must decode as one channel of the image's size with
        valid values. Raises ValueError naming the first bad file (in item order) and what is wrong.
        A split that passed leaves a stamp in the data cache keyed by every file's path, size and
        mtime, so a rerun on unchanged files does not decode them again."""
        try:
            stats = []
            for path in (p for pair in self.items for p in pair):
                st = os.stat(path)
                stats.append((str(path), st.st_size, st.st_mtime_ns))
            key = hashlib.sha1(json.dumps([type(self).__name__, 1, stats]).encode()).hexdigest()[:16]
            stamp = os.path.join(cache_dir(), "checked", f"{type(self).__name__}-{self.split}-{key}.ok")
        except OSError:  # a file is missing: the check below names it
            stamp = None
        if stamp and os.path.exists(stamp):
            return
        pool = cf.ThreadPoolExecutor(min(8, os.cpu_count() or 1))  # decoding releases the GIL
        try:
            for problem in pool.map(self._check_item, self.items):
                if problem:
                    raise ValueError(problem)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if stamp:
            try:
                os.makedirs(os.path.dirname(stamp), exist_ok=True)
                Path(stamp).touch()
            except OSError:
                pass  # only a shortcut for the next run

    def _check_item(self, pair):
        """None if (image, label) would load, else what is wrong, naming the file."""
        image_path, label_path = pair
        try:
            with Image.open(image_path) as img:
                width, height = img.size
                if img.format == "JPEG":
                    img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    img.load()
                else:
                    img.verify()
        except FileNotFoundError:
            return f"image file {image_path} is missing"
        except Exception as err:  # PIL fails on bad files with many exception types
            return f"image file {image_path} is corrupt or truncated ({err})"
        try:
            label = self.load_label(label_path)
        except FileNotFoundError:
            return f"label file {label_path} is missing"
        except Exception as err:  # the loaders' errors name the file
            return str(err) if str(label_path) in str(err) else f"label file {label_path}: {err}"
        if label.shape != (height, width):
            return (f"label file {label_path} is {label.shape[1]}x{label.shape[0]} but image {image_path} "
                    f"is {width}x{height}")
        return None

    def __len__(self):
        return len(self.items)

    def __getitem__(self, item):
        index, aug_seed = split_item(item)
        image_path, label_path = self.items[index]
        image, label = read_image(image_path), self.load_label(label_path)
        if label.shape != (image.height, image.width):
            raise ValueError(f"label file {label_path} is {label.shape[1]}x{label.shape[0]} but image "
                             f"{image_path} is {image.width}x{image.height}")
        if self.split == "train" and aug_seed is not None:
            gen = torch.Generator().manual_seed(int(aug_seed))
            return train_transform(image, label, gen, self.crop_size, scale=self.scale, flip=self.flip,
                                   rotate=self.rotate, blur=self.blur, ignore_index=self.ignore_index)
        return eval_transform(image, label, pad_to=self.crop_size)

    def __repr__(self):
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, {len(self)} items)"
