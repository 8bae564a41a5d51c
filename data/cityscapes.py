"""Cityscapes (fine annotations): the 34 labelIds mapped to the 19 standard train ids."""
import numpy as np

from data import IGNORE_INDEX
from data.folder import LabelledImageFolder, missing_data_error, pair_files, read_label_png

HOW_TO_GET = ("Get leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip from the Cityscapes site "
              "(www.cityscapes-dataset.com, registration needed) and extract both into the same folder.")
IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"

# labelId -> trainId for the 19 evaluated classes (cityscapesScripts labels.py); all else is ignored.
MAX_LABEL_ID = 33  # labelIds are 0..33; the license plate's -1 is not drawn into the labelIds images
LABEL_ID_TO_TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                        24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def _cityscapes_lut() -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


class Cityscapes(LabelledImageFolder):
    num_classes = 19
    class_names = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                   "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
                   "bus", "train", "motorcycle", "bicycle")
    label_lut = _cityscapes_lut()

    def find_items(self, root, split):
        images, labels = root / "leftImg8bit" / split, root / "gtFine" / split
        if not (images.is_dir() and labels.is_dir()):
            raise missing_data_error(f"Cityscapes ({split} split)", [images, labels], HOW_TO_GET)

        def label_for(image):  # leftImg8bit/<split>/<city>/X_leftImg8bit.png -> gtFine/.../X_gtFine_labelIds.png
            return labels / image.parent.name / (image.name[:-len(IMAGE_SUFFIX)] + LABEL_SUFFIX)

        return pair_files(images, f"*/*{IMAGE_SUFFIX}", label_for, "Cityscapes", HOW_TO_GET)

    def read_raw_label(self, path):
        """Every stored value must be a labelId (all map to a train id or ignore, so a wrong file,
        e.g. an instanceIds image, would otherwise train as all-ignore). 255 is let through as
        unlabelled."""
        raw = read_label_png(path)
        bad = (raw > MAX_LABEL_ID) & (raw != IGNORE_INDEX)
        if bad.any():
            raise ValueError(f"label file {path} has value {int(raw[bad].flat[0])}; Cityscapes labelIds are "
                             f"0..{MAX_LABEL_ID} (expected a *{LABEL_SUFFIX} file)")
        return raw
