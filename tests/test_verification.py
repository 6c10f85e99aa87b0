"""Verification metrics and the fold protocol on synthetic distances with results worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kubeface import verification
from kubeface.errors import InvalidInputError


def _pairs(same: list[float], different: list[float]) -> tuple[np.ndarray, np.ndarray]:
    distances = np.array(same + different)
    labels = np.array([True] * len(same) + [False] * len(different))
    return distances, labels


def test_best_threshold_separable_is_midpoint():
    distances, same = _pairs([0.1, 0.2, 0.3], [0.5, 0.6, 0.7])
    assert verification.best_threshold(distances, same) == pytest.approx(0.4)


def test_best_threshold_ties_take_lower_middle():
    # Cutting after 0.2 and after 0.45 both get 5 of 6 right; the lower of the two is taken.
    distances, same = _pairs([0.1, 0.2, 0.45], [0.4, 0.6, 0.7])
    assert verification.best_threshold(distances, same) == pytest.approx(0.3)


def test_best_threshold_never_splits_equal_distances():
    # Accepting exactly one of the two pairs at 0.5 would get all right, but no threshold can.
    distances, same = _pairs([0.2, 0.5], [0.5, 0.9])
    threshold = verification.best_threshold(distances, same)
    accuracy, _, _ = verification.rates(distances, same, threshold)
    assert accuracy == pytest.approx(0.75)
    assert threshold == pytest.approx(0.35)


def test_best_threshold_all_same_accepts_everything():
    distances, same = _pairs([0.3, 0.8], [])
    threshold = verification.best_threshold(distances, same)
    assert threshold > 0.8
    assert verification.rates(distances, same, threshold)[0] == 1.0


def test_threshold_at_far_allows_floor_of_target():
    different = np.arange(1000) / 1000 + 0.5  # 0.500 ... 1.499
    assert verification.threshold_at_far(different, 1e-3) == pytest.approx(0.501)
    assert verification.threshold_at_far(different, 0.0) == pytest.approx(0.5)
    assert verification.threshold_at_far(different, 0.0105) == pytest.approx(0.510)


def test_threshold_at_far_rejects_bad_target():
    with pytest.raises(InvalidInputError, match="far_target"):
        verification.threshold_at_far(np.array([0.5]), 1.0)


def test_rates_counts_strictly_below_threshold():
    distances, same = _pairs([0.1, 0.5], [0.5, 0.9])
    accuracy, tar, far = verification.rates(distances, same, 0.5)
    assert accuracy == pytest.approx(0.75)
    assert tar == pytest.approx(0.5)
    assert far == pytest.approx(0.0)


def test_auc_and_eer_hand_computed():
    # Pairs sorted by distance: s s s d d s d d. 14 of the 16 (same, different) orderings are
    # right, and the ROC meets FAR = 1 - TAR at the point (0.25, 0.75).
    distances, same = _pairs([0.1, 0.2, 0.3, 0.6], [0.4, 0.5, 0.7, 0.8])
    far, tar, max_distances = verification.roc(distances, same)
    assert verification.auc(far, tar) == pytest.approx(14 / 16)
    eer, eer_max_distance = verification.equal_error_rate(far, tar, max_distances)
    assert eer == pytest.approx(0.25)
    assert eer_max_distance == pytest.approx(0.4)


def test_eer_interpolates_between_roc_points():
    # The tie at 0.3 joins the ROC points (0, 0.5) and (0.5, 1) by one segment, which crosses
    # the line FAR = 1 - TAR at FAR 1/4.
    distances, same = _pairs([0.1, 0.3], [0.3, 0.5])
    far, tar, max_distances = verification.roc(distances, same)
    eer, _ = verification.equal_error_rate(far, tar, max_distances)
    assert eer == pytest.approx(0.25)
    assert verification.auc(far, tar) == pytest.approx(3.5 / 4)


def test_auc_counts_ties_as_half():
    distances, same = _pairs([0.5], [0.5])
    far, tar, _ = verification.roc(distances, same)
    assert verification.auc(far, tar) == pytest.approx(0.5)


def test_kfold_one_bad_fold():
    # Ten folds of three same pairs (0.2, 0.3, 0.4) and three different pairs (0.6, 0.7, 0.8),
    # but fold 0 has a same pair at 0.9. Every training set still puts the threshold at 0.5,
    # so fold 0 scores 5 / 6 and the others 6 / 6.
    distances, same, folds = [], [], []
    for fold in range(10):
        same_distances = [0.2, 0.3, 0.9 if fold == 0 else 0.4]
        d, s = _pairs(same_distances, [0.6, 0.7, 0.8])
        distances.append(d)
        same.append(s)
        folds += [fold] * 6
    result = verification.kfold(np.concatenate(distances), np.concatenate(same), np.array(folds))
    assert result.protocol == "k-fold"
    assert result.pairs == 60
    assert [f.max_distance for f in result.folds] == pytest.approx([0.5] * 10)
    assert [f.accuracy for f in result.folds] == pytest.approx([5 / 6] + [1.0] * 9)
    assert result.accuracy == pytest.approx(0.98333333)
    assert result.accuracy_std == pytest.approx(0.05)


def test_kfold_two_folds_thresholds_from_other_fold():
    # Fold 0: same 0.1, 0.97; different 0.35, 0.9, 1.0, 1.1.
    # Fold 1: same 0.25, 0.6; different 0.4, 0.95, 1.05, 1.15.
    distances = np.array([0.1, 0.97, 0.35, 0.9, 1.0, 1.1, 0.25, 0.6, 0.4, 0.95, 1.05, 1.15])
    same = np.array([True, True, False, False, False, False] * 2)
    folds = np.array([0] * 6 + [1] * 6)
    result = verification.kfold(distances, same, folds, far_target=0.25)
    fold0, fold1 = result.folds
    # Accuracy thresholds: fold 1's pairs are best cut after 0.25 or after 0.6 (the lower is
    # taken: 0.325); fold 0's pairs are best cut after 0.1 alone (0.225).
    assert fold0.max_distance == pytest.approx(0.325)
    assert fold1.max_distance == pytest.approx(0.225)
    assert fold0.accuracy == pytest.approx(5 / 6)
    assert fold1.accuracy == pytest.approx(4 / 6)
    assert result.accuracy == pytest.approx(0.75)
    assert result.accuracy_std == pytest.approx(1 / 12)
    # FAR 0.25 of 4 different pairs allows one below the threshold: the second smallest.
    assert fold0.val_max_distance == pytest.approx(0.95)
    assert fold1.val_max_distance == pytest.approx(0.9)
    assert (fold0.val, fold0.far) == (pytest.approx(0.5), pytest.approx(0.5))
    assert (fold1.val, fold1.far) == (pytest.approx(1.0), pytest.approx(0.25))
    assert result.val == pytest.approx(0.75)
    assert result.val_std == pytest.approx(0.25)
    assert result.far == pytest.approx(0.375)


def test_kfold_per_fold_distances_use_own_row():
    # Row k contains the distances used when fold k is held out; the other row must not leak in.
    same = np.array([True, False, True, False])
    folds = np.array([0, 0, 1, 1])
    per_fold = np.array([[9.0, 9.0, 0.1, 0.5],   # fold 0 held out: trains on fold 1's 0.1 / 0.5
                         [0.2, 0.8, 9.0, 9.0]])  # fold 1 held out: trains on fold 0's 0.2 / 0.8
    result = verification.kfold(per_fold, same, folds)
    assert [f.max_distance for f in result.folds] == pytest.approx([0.3, 0.5])
    assert [f.accuracy for f in result.folds] == pytest.approx([0.5, 0.5])


def test_kfold_needs_two_folds():
    distances, same = _pairs([0.1], [0.9])
    with pytest.raises(InvalidInputError, match="at least 2 folds"):
        verification.kfold(distances, same, np.zeros(2))


def test_train_test_scores_test_pairs_only():
    train_distances, train_same = _pairs([0.1, 0.2, 0.3], [0.7, 0.8, 0.9])
    test_distances, test_same = _pairs([0.45, 0.55], [0.4, 0.6])
    result = verification.train_test(train_distances, train_same, test_distances, test_same)
    assert result.protocol == "train-test"
    assert result.pairs == 4
    assert result.folds[0].max_distance == pytest.approx(0.5)
    assert result.accuracy == pytest.approx(0.5)
    assert result.accuracy_std is None
    assert result.auc == pytest.approx(0.5)


def test_rejects_mismatched_shapes():
    with pytest.raises(InvalidInputError, match="one length"):
        verification.best_threshold(np.array([0.1, 0.2]), np.array([True]))


def test_rejects_nan_distance():
    with pytest.raises(InvalidInputError, match="finite"):
        verification.best_threshold(np.array([0.1, np.nan]), np.array([True, False]))


def test_plot_roc_writes_png(tmp_path):
    distances, same = _pairs([0.1, 0.2, 0.3, 0.6] * 5, [0.4, 0.5, 0.7, 0.8] * 5)
    folds = np.arange(40) % 2
    result = verification.kfold(distances, same, folds)
    path = verification.plot_roc(result, tmp_path / "roc.png", "synthetic")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (600, 500)
