import math

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from engine.metrics import boundary_counts, boundary_mask, confusion_matrix, scores, trimap_mask
from data.synthetic import make_scene


class Fixed(torch.nn.Module):
    """A model that "predicts" the class each image holds in its first channel."""

    def eval_options(self, options):
        return options

    def predict(self, images):
        return torch.nn.functional.one_hot(images[:, 0].round().long(), 5).permute(0, 3, 1, 2).float(), {}


class Images(torch.utils.data.Dataset):
    num_classes = 5

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_confusion_matrix_and_scores_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    cm = confusion_matrix(pred, target, 3)
    # rows = truth; the ignored pixel (255) is not counted
    assert cm.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    s = scores(cm)
    iou = [1 / 3, 3 / 4, 1 / 2]  # tp / (gt + pred - tp)
    assert s["mIoU"] == pytest.approx(100 * sum(iou) / 3)
    assert s["pixel_acc"] == pytest.approx(100 * 5 / 7)
    assert s["mean_acc"] == pytest.approx(100 * (1 / 2 + 1 + 1 / 2) / 3)
    assert s["per_class_iou"] == [pytest.approx(100 * v, abs=1e-3) for v in iou]


def test_absent_class_is_left_out_of_the_mean():
    cm = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 3)
    s = scores(cm)
    assert s["mIoU"] == pytest.approx(100.0)
    assert s["per_class_iou"][2] is None


def test_bad_label_value_is_a_clear_error():
    with pytest.raises(ValueError, match="label value 7"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 3)


def test_boundary_band_by_hand():
    # a vertical edge between columns 3 and 4 of a 7×7 map
    target = torch.zeros(1, 7, 7, dtype=torch.long)
    target[0, :, 4:] = 1
    band1 = boundary_mask(target, 1)
    assert band1[0, 0].tolist() == [False, False, True, True, True, True, False]
    band0 = boundary_mask(target, 0)
    assert band0[0, 0].tolist() == [False, False, False, True, True, False, False]
    # the band is a Euclidean disk: at radius 1.5 no extra column is reached, at 2 one more each side
    assert boundary_mask(target, 2)[0, 0].tolist() == [False, True, True, True, True, True, True]


def test_ignored_pixels_are_in_neither_region():
    target = torch.zeros(1, 5, 5, dtype=torch.long)
    target[0, :, 3:] = 1
    target[0, 0, :] = 255
    pred = target.clone()
    pred[0, 4, 0] = 1  # one interior error
    counts = boundary_counts(pred, target, 1)
    (b_ok, b_n), (i_ok, i_n) = counts["boundary"], counts["internal"]
    assert b_n + i_n == 20  # 25 pixels minus the 5 ignored
    # columns 1..4 of rows 1..4 (the 0|1 edge), plus (1, 0): 1 px from the void row above it
    assert b_n == 4 * 4 + 1 and b_ok == b_n
    assert (i_ok, i_n) == (2, 3)  # column 0 of rows 2..4
    assert not boundary_mask(target, 1)[0, 0].any()


def edt_band(target, band, ignore_index=255):
    """Oracle for boundary_mask, built independently: the boundary set by a plain loop over
    4-neighbour pairs, then scipy's exact Euclidean distance transform to that set."""
    out = []
    for t in np.asarray(target):
        h, w = t.shape
        valid = t != ignore_index
        bset = np.zeros((h, w), bool)
        for y in range(h):
            for x in range(w):
                for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if not (0 <= ny < h and 0 <= nx < w):
                        continue  # the image border is no boundary
                    if not valid[y, x] and valid[ny, nx]:
                        bset[y, x] = True  # void pixel touching a labelled one
                    if valid[y, x] and valid[ny, nx] and t[y, x] != t[ny, nx]:
                        bset[y, x] = True  # labelled pixel beside another class
        if not bset.any():
            out.append(np.zeros((h, w), bool))
            continue
        dist = distance_transform_edt(~bset)  # distance to the nearest boundary-set pixel
        out.append((dist <= band) & valid)
    return np.stack(out)


def voc_like(size=40, lo=15, hi=25, ring=5):
    """Background 0, a square object of class 1 (rows/cols lo..hi-1), a `ring`-px void band round it."""
    t = torch.zeros(1, size, size, dtype=torch.long)
    t[0, lo - ring:hi + ring, lo - ring:hi + ring] = 255
    t[0, lo:hi, lo:hi] = 1
    return t


@pytest.mark.parametrize("band", [1.75, 7.0])
def test_voc_void_ring_band_matches_edt(band):
    target = voc_like()
    mask = boundary_mask(target, band)
    assert mask.any()  # the old definition (label changes between labelled pixels only) gave none
    assert np.array_equal(mask.numpy(), edt_band(target, band))
    assert not mask[target == 255].any()
    # both sides of the ring are reached: object pixels and background pixels
    assert mask[target == 1].any() and mask[target == 0].any()


def test_voc_void_ring_band_sizes_by_hand():
    target = voc_like()
    near = boundary_mask(target, 1.75)
    # 1.75 px: the object's outer 1-px frame (10² − 8² = 36; the next frame is 2 px in) and the
    # background's 1-px frame round the 20×20 ring (22² − 20² = 84; its corners are √2 px out)
    assert near[target == 1].sum().item() == 36 and near[target == 0].sum().item() == 84
    # 7 px: the whole 10×10 object (its centre is 5 px in), and the background in a 34×34 square
    # less the 20×20 ring (756) less, per corner, the 19 of 7×7 pixels farther than 7 px (680)
    far = boundary_mask(target, 7)
    assert far[target == 1].sum().item() == 100 and far.sum().item() == 780


def test_boundary_band_on_a_strip_by_hand():
    # one row: 0 0 0 | void void | 1 1 | 2 2 2
    target = torch.tensor([[[0, 0, 0, 255, 255, 1, 1, 2, 2, 2]]])
    # boundary set: void 3 (beside 2), void 4 (beside 5), 6 and 7 (the 1|2 change)
    # distances of the labelled pixels: 0→3, 1→2, 2→1, 5→1, 6→0, 7→0, 8→1, 9→2
    def band(b):
        return [i for i, v in enumerate(boundary_mask(target, b)[0, 0].tolist()) if v]
    assert band(0) == [6, 7]
    assert band(1) == [2, 5, 6, 7, 8]
    assert band(1.75) == [2, 5, 6, 7, 8]
    assert band(2) == [1, 2, 5, 6, 7, 8, 9]
    assert band(3) == [0, 1, 2, 5, 6, 7, 8, 9]
    for b in (0, 1, 2, 3):
        assert np.array_equal(boundary_mask(target, b).numpy(), edt_band(target, b))


def test_generated_scene_without_void_matches_edt():
    # label changes between touching classes only (no void): the band is the old one
    labels = np.stack([make_scene(0, "val", i, image_size=48)[1] for i in range(3)]).astype(np.int64)
    labels[0, 20:, :24] = 3  # make sure two object classes touch each other, not only background
    target = torch.from_numpy(labels)
    assert (target != 255).all() and len(target.unique()) >= 3
    for band in (0, 1, 1.75, 3.5):
        mask = boundary_mask(target, band)
        assert mask.any()
        assert np.array_equal(mask.numpy(), edt_band(target, band))


def test_void_never_in_band_and_border_is_no_boundary():
    # one class everywhere: the image border alone makes no band
    assert not boundary_mask(torch.ones(2, 9, 9, dtype=torch.long), 3).any()
    # all void: nothing scored
    assert not boundary_mask(torch.full((1, 6, 6), 255), 3).any()
    # a void block against the border: the band is the labelled pixels near the block, and no
    # void pixel is in it, whatever the band
    target = torch.zeros(1, 12, 12, dtype=torch.long)
    target[0, :4, :4] = 255
    for band in (0, 1, 2.5, 7):
        mask = boundary_mask(target, band)
        assert not mask[target == 255].any()
        assert np.array_equal(mask.numpy(), edt_band(target, band))
    # the void block's neighbours are in the band at 1 px; the far corner is not at 7 px
    assert boundary_mask(target, 1)[0, 4, :5].tolist() == [True, True, True, True, False]
    assert not boundary_mask(target, 7)[0, 11, 11]


def test_empty_confusion_matrix_gives_nan():
    s = scores(torch.zeros(2, 2, dtype=torch.int64))
    assert math.isnan(s["mIoU"]) and math.isnan(s["pixel_acc"])


# --- the padding evaluation adds is outside the image: no boundary, no score ---------------------

def test_a_padded_image_has_the_band_and_the_scores_it_has_alone():
    """A VOC-like label (objects with a void border, void elsewhere too) padded bottom/right as a
    batch with a larger image: the same boundary band, the same boundary/internal counts, the same
    confusion matrix and trimap as the image alone (the padding's edge is no boundary)."""
    import torch.nn.functional as F

    from data import IGNORE_INDEX, PAD_LABEL
    from engine.evaluate import evaluate
    gen = torch.Generator().manual_seed(0)
    label = torch.zeros(30, 40, dtype=torch.long)
    label[5:20, 8:25] = 3
    label[4, 8:25] = label[20, 8:25] = IGNORE_INDEX  # the void band VOC draws around objects
    label[25:, 30:] = IGNORE_INDEX
    pred = torch.randint(0, 5, (30, 40), generator=gen)
    padded_label = F.pad(label, (0, 24, 0, 18), value=PAD_LABEL)
    extent = padded_label != PAD_LABEL
    scored = padded_label.masked_fill(~extent, IGNORE_INDEX)
    padded_pred = F.pad(pred, (0, 24, 0, 18), value=0)
    for band in (1.0, 3.5, 7.0):
        alone = boundary_mask(label[None], band)
        together = boundary_mask(scored[None], band, extent=extent[None])
        assert torch.equal(together[0, :30, :40], alone[0]) and not together[0, 30:].any()
        assert boundary_counts(padded_pred[None], scored[None], band, extent=extent[None]) == \
            boundary_counts(pred[None], label[None], band)
    # without the extent, the padding's edge would be a boundary: the bug this guards against
    assert boundary_mask(scored[None], 7.0)[0, :30, :40].sum() > boundary_mask(label[None], 7.0).sum()

    big_label = torch.randint(0, 5, (48, 64), generator=gen)
    big_pred = torch.randint(0, 5, (48, 64), generator=gen)
    items = Images([(pred.float().expand(3, -1, -1), label), (big_pred.float().expand(3, -1, -1), big_label)])
    cfg = {"batch_size": 2, "boundary_band": 3.5, "trimap": [1, 3]}
    together = evaluate(Fixed(), items, cfg)  # the small image padded to the large one's size
    one_by_one = evaluate(Fixed(), items, {**cfg, "batch_size": 1})
    for key in ("mIoU", "pixel_acc", "boundary_acc", "internal_acc", "trimap"):
        assert together[key] == one_by_one[key], key  # padding in a batch changes no score
    assert set(together["trimap"]) == {"1", "3"} and 0 <= together["trimap"]["1"]["mIoU"] <= 100


def test_a_prediction_outside_the_classes_is_a_clear_error():
    target = torch.tensor([[0, 1], [2, 255]])
    with pytest.raises(ValueError, match=r"predicted class 3 is outside 0\.\.2"):
        confusion_matrix(torch.tensor([[0, 3], [1, 1]]), target, 3)
    with pytest.raises(ValueError, match=r"predicted class 255 is outside 0\.\.2"):
        confusion_matrix(torch.tensor([[0, 255], [1, 1]]), target, 3)
    # a prediction on an ignored pixel is not scored, so it is not checked either
    assert confusion_matrix(torch.tensor([[0, 1], [2, 7]]), target, 3).sum() == 3


def test_the_images_option_scores_the_first_images_only():
    """eval option images = N (the CRF grid's scoring on part of the held-out images): the scores of
    the first N images alone; any other value is one clear error."""
    from engine.evaluate import evaluate
    gen = torch.Generator().manual_seed(1)
    blocks = [torch.randint(0, 5, (4, 4), generator=gen).repeat_interleave(4, 0).repeat_interleave(4, 1)
              for _ in range(6)]  # 4×4-px blocks of one class: boundary and internal pixels
    items = [(blocks[2 * i].float().expand(3, -1, -1), blocks[2 * i + 1]) for i in range(3)]
    cfg = {"batch_size": 2, "boundary_band": 1.0}
    first_two = evaluate(Fixed(), Images(items), {**cfg, "images": 2})
    alone = evaluate(Fixed(), Images(items[:2]), cfg)
    for key in ("mIoU", "pixel_acc", "boundary_acc", "internal_acc"):
        assert first_two[key] == alone[key] and not math.isnan(alone[key]), key
    assert first_two["mIoU"] != evaluate(Fixed(), Images(items), cfg)["mIoU"]  # the third image counts otherwise
    for bad in (0, 4, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"eval option images must be an int in 1\.\.3"):
            evaluate(Fixed(), Images(items), {**cfg, "images": bad})


def test_trimap_is_the_void_dilated_by_a_square_as_the_authors_code():
    """MyVOCevalsegBoundary.m: imdilate(void, strel('square', 2w + 1)), the labelled pixels it covers. Drawn by
    hand: a void pixel V at (1, 1) and class changes 0 | 1 | 2 at columns 3, 4, 5, no void there."""
    V = 255
    target = torch.tensor([[[0, 0, 0, 0, 1, 2, 2],
                            [0, V, 0, 0, 1, 2, 2],
                            [0, 0, 0, 0, 1, 2, 2],
                            [0, 0, 0, 0, 1, 2, 2],
                            [0, 0, 0, 0, 1, 2, 2]]])
    x, o = True, False
    assert trimap_mask(target, 1)[0].tolist() == [[x, x, x, o, o, o, o],  # the 3×3 square, V itself not scored
                                                  [x, o, x, o, o, o, o],
                                                  [x, x, x, o, o, o, o],
                                                  [o, o, o, o, o, o, o],
                                                  [o, o, o, o, o, o, o]]
    w2 = trimap_mask(target, 2)[0]  # 5×5: rows 0-3, columns 0-3, the corner (3, 0) too (a square, not a disk)
    assert w2.sum() == 4 * 4 - 1 and w2[3, 0] and not w2[4].any() and not w2[:, 4:].any()
    assert not boundary_mask(target, 2)[0, 3, 0]  # GCN's band: a Euclidean disk (√5 > 2)
    assert boundary_mask(target, 1)[0, :, 3:6].all()  # ... around the class changes too, which the trimap leaves out
    # data without a void ring: the class changes are the seeds, dilated the same way
    edges = trimap_mask(target, 1, around="class_edges")[0]
    assert edges.tolist() == [[o, o, x, x, x, x, x]] * 5  # columns 3-5, ± 1
    # the image's border and the padding beyond it (extent) seed nothing
    padded = torch.full((1, 5, 9), V)
    padded[:, :, :7] = target
    extent = torch.zeros(1, 5, 9, dtype=torch.bool)
    extent[:, :, :7] = True
    assert torch.equal(trimap_mask(padded, 1, extent=extent)[0, :, :7], trimap_mask(target, 1)[0])


@pytest.mark.parametrize("width, around, message", [(1.5, "void", "whole number"), (-1, "void", "whole number"),
                                                    (1, "edges", "trimap_around must be one of")])
def test_bad_trimap_settings_are_one_clear_error(width, around, message):
    with pytest.raises(ValueError, match=message):
        trimap_mask(torch.zeros(1, 4, 4, dtype=torch.long), width, around=around)
def test_evaluations_sharing_a_forward_run_the_network_once_and_score_as_alone():
    """A run's plans of the same forward (with and without the trimap or CRF, another boundary band)
    share one pass of the network per batch (engine/one_run.py passes): the same scores as each alone."""
    from engine.evaluate import evaluate, forward_key

    class Counted(Fixed):
        calls = 0

        def predict(self, images):
            Counted.calls += 1
            return super().predict(images)
    gen = torch.Generator().manual_seed(2)
    blocks = [torch.randint(0, 5, (4, 4), generator=gen).repeat_interleave(4, 0).repeat_interleave(4, 1)
              for _ in range(6)]
    items = Images([(blocks[2 * i].float().expand(3, -1, -1), blocks[2 * i + 1]) for i in range(3)])
    # the trimap around the class edges: these maps have no void for the authors' void-ringed trimap to dilate
    plain = {"batch_size": 2, "boundary_band": 1.0}
    banded = {"batch_size": 2, "boundary_band": 2.0, "trimap": [1], "trimap_around": "class_edges"}
    assert forward_key(plain) == forward_key(banded) != forward_key({**plain, "batch_size": 1})
    alone = [evaluate(Counted(), items, cfg) for cfg in (plain, banded)]
    Counted.calls, passes = 0, []
    shared = [evaluate(Counted(), items, cfg, passes=passes) for cfg in (plain, banded)]
    assert Counted.calls == 2 and len(passes) == 2  # two batches, computed once
    for one, other in zip(alone, shared):
        assert {k: v for k, v in one.items() if k != "infer_fps"} == {k: v for k, v in other.items() if k != "infer_fps"}


def test_class_map_is_argmax_ties_included_in_either_memory_format():
    from engine.metrics import class_map
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 9, 11).round(decimals=1)  # rounding makes ties
    logits[:, 4] = logits[:, 2]  # a tie on every pixel between classes 2 and 4
    for x in (logits, logits.contiguous(memory_format=torch.channels_last)):
        assert torch.equal(class_map(x), x.argmax(1))
