"""Transforms: normalisation and its inverse, the real datasets' training augmentation and evaluation
padding, and the collate that pads a batch of images of different sizes.

Training augmentation is a pure function of a torch.Generator, so `dataset[(i, seed)]` always gives
the same crop for the same seed (see data/__init__.py). Evaluation never resizes: it only pads
bottom/right, with label PAD_LABEL (data/__init__.py): the padding is never scored, and its edge is
not a boundary (evaluation tells it from the void of the labels).
"""
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from data import IGNORE_INDEX, PAD_LABEL

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


def _pad(image: torch.Tensor, label: torch.Tensor, height: int, width: int, label_value: int):
    """Pad bottom/right up to height x width: image with 0 (the mean, after normalisation),
    label with label_value."""
    pad_h, pad_w = max(height - image.shape[1], 0), max(width - image.shape[2], 0)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
        label = F.pad(label, (0, pad_w, 0, pad_h), value=label_value)
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


def random_resize(image: torch.Tensor, label: torch.Tensor, gen: torch.Generator, scale, ignore_index=IGNORE_INDEX):
    """A tensor pair (float [3,H,W] normalised, int64 [H,W]) resized by a factor drawn uniformly in
    scale (bilinear / nearest), then padded (image 0 = the mean, label ignore_index) and cropped back
    to H x W at a random place, as train_transform does for the real datasets."""
    factor = _uniform(gen, scale[0], scale[1])
    height, width = label.shape
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    label = F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()
    image, label = _pad(image, label, height, width, ignore_index)
    top = _randint(gen, image.shape[1] - height + 1)
    left = _randint(gen, image.shape[2] - width + 1)
    return image[:, top:top + height, left:left + width].contiguous(), label[top:top + height, left:left + width].contiguous()


def eval_transform(image: Image.Image, label: np.ndarray, pad_to: int | None, multiple: int = 32):
    """No resize: pad bottom/right to at least pad_to and to a multiple of `multiple` (the label with
    PAD_LABEL). Returns (float32 [3,H',W'], int64 [H',W'])."""
    img = to_tensor(image)
    lab = torch.from_numpy(np.asarray(label, dtype=np.uint8).astype(np.int64))
    height, width = lab.shape
    if pad_to:
        height, width = max(height, pad_to), max(width, pad_to)
    height, width = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    return _pad(img, lab, height, width, PAD_LABEL)


def pad_collate(batch):
    """A batch of (image, label) of different sizes (real validation images): each padded bottom/right
    to the largest height and width, the label with PAD_LABEL (outside the image: never scored)."""
    height = max(image.shape[1] for image, _ in batch)
    width = max(image.shape[2] for image, _ in batch)
    padded = [_pad(image, label, height, width, PAD_LABEL) for image, label in batch]
    return torch.stack([p[0] for p in padded]), torch.stack([p[1] for p in padded])
