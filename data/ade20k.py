"""ADE20K as released for the MIT Scene Parsing benchmark (ADEChallengeData2016): 150 classes.

Annotations store 0 for "other" (not one of the 150) and 1..150 for the classes; 0 becomes ignore.
"""
import numpy as np

from data import IGNORE_INDEX
from data.folder import LabelledImageFolder, missing_data_error, pair_files

HOW_TO_GET = ("Get ADEChallengeData2016.zip from the MIT Scene Parsing benchmark "
              "(sceneparsing.csail.mit.edu).")
SPLIT_DIRS = {"train": "training", "val": "validation"}


def _ade_lut() -> np.ndarray:
    lut = np.arange(256, dtype=np.int64) - 1  # 1..150 -> 0..149; 151..255 stay invalid (150..254)
    lut[0] = IGNORE_INDEX
    return lut.astype(np.uint8)


class ADE20K(LabelledImageFolder):
    num_classes = 150
    # First names of the 150 classes in the benchmark's objectInfo150 list, in label order.
    class_names = (
        "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
        "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
        "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
        "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
        "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
        "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
        "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
        "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
        "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
        "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
        "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
        "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
        "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
        "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
        "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
        "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
        "bulletin board", "shower", "radiator", "glass", "clock", "flag")
    label_lut = _ade_lut()

    def find_items(self, root, split):
        # --data-root may be ADEChallengeData2016 itself or the folder holding it.
        candidates = [root, root / "ADEChallengeData2016"]
        sub = SPLIT_DIRS[split]
        for base in candidates:
            images, annotations = base / "images" / sub, base / "annotations" / sub
            if images.is_dir() and annotations.is_dir():
                return pair_files(images, "*.jpg", lambda p: annotations / f"{p.stem}.png",
                                  "ADE20K", HOW_TO_GET)
        looked_for = [base / kind / sub for base in candidates for kind in ("images", "annotations")]
        raise missing_data_error(f"ADE20K ({split} split)", looked_for, HOW_TO_GET)
