import math

import pytest
import torch

from ablations.metrics import boundary_counts, boundary_mask, confusion_matrix, scores


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
    assert b_n == 4 * 4 and b_ok == b_n  # columns 1..4 of rows 1..4
    assert (i_ok, i_n) == (3, 4)
    assert not boundary_mask(target, 1)[0, 0].any()


def test_empty_confusion_matrix_gives_nan():
    s = scores(torch.zeros(2, 2, dtype=torch.int64))
    assert math.isnan(s["mIoU"]) and math.isnan(s["pixel_acc"])
