"""PASCAL VOC 2012 with the SBD extra annotations: 21 classes (background + 20).

'train' is the standard 10,582-image "train_aug" set: (SBD train + SBD val + VOC12 train) minus
VOC12 val. 'val' is VOC12 val (1,449 images).
"""
import os
import warnings
from pathlib import Path

import numpy as np
import scipy.io

from data.folder import LabelledImageFolder, missing_data_error, read_label_png

HOW_TO_GET = (
    "Get VOC2012 (VOCtrainval_11-May-2012.tar) from the PASCAL VOC site "
    "(host.robots.ox.ac.uk/pascal/VOC/voc2012/) and SBD (benchmark.tgz) from the Berkeley SBD page "
    "(Semantic Boundaries Dataset, 'benchmark_RELEASE'), or use a prepared SegmentationClassAug "
    "folder of grayscale label PNGs in place of SBD.")


def _read_ids(path: Path) -> list:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _stems(folder: Path, suffix: str) -> set:
    """File stems in a folder, listed once (cheaper than one exists() per id)."""
    if not folder.is_dir():
        return set()
    return {name[:-len(suffix)] for name in os.listdir(folder) if name.endswith(suffix)}


def read_sbd_label(path: Path) -> np.ndarray:
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        return np.asarray(mat["GTcls"].Segmentation)
    except Exception as err:  # loadmat fails on bad files with many exception types (even IndexError)
        raise OSError(f"cannot read SBD label file {path} (expected GTcls.Segmentation): {err!r}") from err


class VOCSegmentation(LabelledImageFolder):
    num_classes = 21
    class_names = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
                   "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
                   "sheep", "sofa", "train", "tvmonitor")

    def find_items(self, root, split):
        voc = root / "VOCdevkit" / "VOC2012"
        sbd = root / "benchmark_RELEASE" / "dataset"
        voc_lists = voc / "ImageSets" / "Segmentation"
        aug_dirs = [root / "SegmentationClassAug", voc / "SegmentationClassAug"]
        aug = next((d for d in aug_dirs if d.is_dir()), None)
        have_voc = (voc_lists / "val.txt").is_file()
        have_sbd = (sbd / "train.txt").is_file() and (sbd / "val.txt").is_file()

        if split == "val":
            if not have_voc:
                raise missing_data_error("PASCAL VOC 2012 (val split)",
                                         [voc_lists / "val.txt", voc / "JPEGImages", voc / "SegmentationClass"],
                                         HOW_TO_GET)
            return self._pair(_read_ids(voc_lists / "val.txt"), [voc / "JPEGImages"],
                              [(voc / "SegmentationClass", ".png")])

        looked_for = [voc_lists / "train.txt", voc_lists / "val.txt", sbd / "train.txt", sbd / "val.txt",
                      *aug_dirs]
        if not have_voc:
            # Without the VOC12 val list we cannot keep val images out of train_aug.
            raise missing_data_error("PASCAL VOC 2012 (needed for train_aug: its val list is held out)",
                                     looked_for, HOW_TO_GET)
        val_ids = set(_read_ids(voc_lists / "val.txt"))
        if have_sbd:
            ids = set(_read_ids(sbd / "train.txt")) | set(_read_ids(sbd / "val.txt"))
            ids |= set(_read_ids(voc_lists / "train.txt"))
        elif aug is not None:
            # A prepared SegmentationClassAug holds labels for train_aug (and usually val): use its ids.
            ids = _stems(aug, ".png")
        else:
            warnings.warn(f"SBD not found at {sbd} (and no SegmentationClassAug): training on VOC12 train "
                          f"(1,464 images) instead of train_aug (10,582). {HOW_TO_GET}")
            ids = set(_read_ids(voc_lists / "train.txt"))
        label_sources = [(voc / "SegmentationClass", ".png"), (sbd / "cls", ".mat")]
        if aug is not None:
            label_sources.insert(0, (aug, ".png"))
        return self._pair(sorted(ids - val_ids), [voc / "JPEGImages", sbd / "img"], label_sources)

    @staticmethod
    def _pair(ids, image_dirs, label_sources):
        """For each id: the image from the first image dir that has it, the label from the first
        (folder, suffix) source that has it."""
        image_stems = [(d, _stems(d, ".jpg")) for d in image_dirs]
        label_stems = [(d, suffix, _stems(d, suffix)) for d, suffix in label_sources]
        items = []
        for id_ in ids:
            image = next((d / f"{id_}.jpg" for d, stems in image_stems if id_ in stems), None)
            label = next((d / f"{id_}{suffix}" for d, suffix, stems in label_stems if id_ in stems), None)
            if image is None:
                raise missing_data_error(f"PASCAL VOC image for id {id_!r}",
                                         [d / f"{id_}.jpg" for d in image_dirs], HOW_TO_GET)
            if label is None:
                raise missing_data_error(f"PASCAL VOC label for id {id_!r}",
                                         [d / f"{id_}{suffix}" for d, suffix in label_sources], HOW_TO_GET)
            items.append((image, label))
        return items

    def read_raw_label(self, path):
        return read_sbd_label(path) if path.suffix == ".mat" else read_label_png(path)
