"""Transforms shared by the real-dataset loaders, and their common base class.

Training augmentation is a pure function of a torch.Generator, so `dataset[(i, seed)]` always gives
the same crop for the same seed (see data/__init__.py). Evaluation never resizes: it only pads
bottom/right, with label 255 so the padding is never scored.
"""
import concurrent.futures as cf
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from data import IGNORE_INDEX, cache_dir, split_item

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Blur as in the PSPNet reference code (a 5x5 Gaussian with p=0.5); sigma 1.1 is what OpenCV derives
# for a 5x5 kernel when asked for sigma 0.
BLUR_KERNEL = 5
BLUR_SIGMA = 1.1


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image -> float32 [3,H,W], normalised with the ImageNet mean/std."""
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy())
    pixels = pixels.permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return pixels.sub_(mean).div_(std)


def to_rgb(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Inverse of a normalisation (to_tensor's by default) for a batch [N,3,H,W] -> uint8 [N,H,W,3]
    (the CRF's colour features)."""
    mean = torch.tensor(mean).view(1, 3, 1, 1)
    std = torch.tensor(std).view(1, 3, 1, 1)
    return (images * std + mean).mul(255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=gen).item()


def _coin(gen: torch.Generator) -> bool:
    return torch.rand((), generator=gen).item() < 0.5


def _randint(gen: torch.Generator, n: int) -> int:
    """Uniform integer in [0, n)."""
    return int(torch.randint(n, (), generator=gen).item())


def _pad(image: torch.Tensor, label: torch.Tensor, height: int, width: int, ignore_index: int):
    """Pad bottom/right up to height x width: image with 0 (the mean, after normalisation),
    label with ignore_index."""
    pad_h, pad_w = max(height - image.shape[1], 0), max(width - image.shape[2], 0)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
        label = F.pad(label, (0, pad_w, 0, pad_h), value=ignore_index)
    return image, label


def train_transform(image: Image.Image, label: np.ndarray, gen: torch.Generator, crop_size: int,
                    scale=(0.5, 2.0), flip=True, rotate=0.0, blur=False, ignore_index=IGNORE_INDEX):
    """Random scale, rotation, blur and flip, then pad and random-crop to crop_size x crop_size.

    label is a uint8 [H,W] array of train ids. All randomness is drawn from `gen`.
    Returns (float32 [3,c,c], int64 [c,c]).
    """
    label_img = Image.fromarray(np.asarray(label, dtype=np.uint8))
    if scale is not None:
        factor = _uniform(gen, scale[0], scale[1])
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.BILINEAR)
        label_img = label_img.resize(size, Image.NEAREST)

    img = to_tensor(image)
    lab = torch.from_numpy(np.array(label_img, dtype=np.uint8))[None]  # [1,H,W] for torchvision
    if rotate:
        angle = _uniform(gen, -rotate, rotate)
        # Rotating the normalised tensor lets the exposed corners be exactly the mean (0).
        img = TF.rotate(img, angle, InterpolationMode.BILINEAR, fill=[0.0])
        lab = TF.rotate(lab, angle, InterpolationMode.NEAREST, fill=[float(ignore_index)])
    if blur and _coin(gen):
        img = TF.gaussian_blur(img, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])
    if flip and _coin(gen):
        img, lab = img.flip(-1), lab.flip(-1)

    lab = lab[0].long()
    img, lab = _pad(img, lab, crop_size, crop_size, ignore_index)
    top = _randint(gen, img.shape[1] - crop_size + 1)
    left = _randint(gen, img.shape[2] - crop_size + 1)
    img = img[:, top:top + crop_size, left:left + crop_size].contiguous()
    lab = lab[top:top + crop_size, left:left + crop_size].contiguous()
    return img, lab


def eval_transform(image: Image.Image, label: np.ndarray, pad_to: int | None, multiple: int = 32,
                   ignore_index=IGNORE_INDEX):
    """No resize: pad bottom/right to at least pad_to and to a multiple of `multiple`.
    Returns (float32 [3,H',W'], int64 [H',W'])."""
    img = to_tensor(image)
    lab = torch.from_numpy(np.asarray(label, dtype=np.uint8).astype(np.int64))
    height, width = lab.shape
    if pad_to:
        height, width = max(height, pad_to), max(width, pad_to)
    height, width = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    return _pad(img, lab, height, width, ignore_index)


def pad_collate(batch, ignore_index=IGNORE_INDEX):
    """A batch of (image, label) of different sizes (real validation images): each padded bottom/right
    to the largest height and width, the label with ignore_index so the padding is never scored."""
    height = max(image.shape[1] for image, _ in batch)
    width = max(image.shape[2] for image, _ in batch)
    padded = [_pad(image, label, height, width, ignore_index) for image, label in batch]
    return torch.stack([p[0] for p in padded]), torch.stack([p[1] for p in padded])


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
        return eval_transform(image, label, pad_to=self.crop_size, ignore_index=self.ignore_index)

    def __repr__(self):
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, {len(self)} items)"
