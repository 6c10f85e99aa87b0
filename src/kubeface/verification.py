"""Face verification metrics on pair distances: k-fold accuracy, VAL at a FAR, ROC, AUC, EER.

A pair is predicted "same person" when its distance is below the threshold (max_distance).
Thresholds are always chosen on pairs other than the ones they are scored on: on the other
folds in the k-fold protocol of LFW View 2, or on a separate training set of pairs (View 1).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from kubeface.errors import InvalidInputError

logger = logging.getLogger(__name__)

DEFAULT_FAR_TARGET = 1e-3


@dataclasses.dataclass(frozen=True)
class FoldResult:
    """Scores on one test fold, with thresholds chosen on the pairs outside it."""

    fold: int
    pairs: int
    max_distance: float
    """Threshold that maximised accuracy on the training pairs."""
    accuracy: float
    val_max_distance: float
    """Largest threshold whose false accept rate on the training pairs is at most the target."""
    val: float
    """Validation rate (true accept rate) on this fold at val_max_distance."""
    far: float
    """False accept rate on this fold at val_max_distance."""


@dataclasses.dataclass(frozen=True)
class VerificationResult:
    """Scores of one verification protocol run.

    accuracy, val and far are means over the test folds. Their standard deviations are
    population standard deviations over the folds (NumPy's default, ddof=0), and None when
    there is a single test set. auc and eer are computed once on all test pairs together.
    """

    protocol: str
    pairs: int
    accuracy: float
    accuracy_std: float | None
    far_target: float
    val: float
    val_std: float | None
    far: float
    auc: float
    eer: float
    eer_max_distance: float
    folds: list[FoldResult]
    roc_far: np.ndarray = dataclasses.field(repr=False)
    roc_tar: np.ndarray = dataclasses.field(repr=False)

    def to_json(self) -> dict:
        result = dataclasses.asdict(self)
        del result["roc_far"], result["roc_tar"]
        return result


def _check_pairs(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distances = np.asarray(distances, np.float64)
    same = np.asarray(same, bool)
    if distances.ndim != 1 or distances.shape != same.shape:
        raise InvalidInputError(
            f"distances and same-person labels must be 1-D arrays of one length; got shapes "
            f"{distances.shape} and {same.shape}"
        )
    if not np.all(np.isfinite(distances)):
        raise InvalidInputError(f"distances must be finite; got {int(np.sum(~np.isfinite(distances)))} that are not")
    return distances, same


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """Return the max_distance that maximises accuracy on these pairs.

    Every cut between two different sorted distances is tried, with the threshold halfway
    between them, and so are the cuts below the smallest and above the largest distance.
    When several cuts reach the best accuracy, the middle one of them is taken (the lower
    middle for an even count).
    """
    distances, same = _check_pairs(distances, same)
    if len(distances) == 0:
        raise InvalidInputError("cannot choose a threshold on zero pairs")
    order = np.argsort(distances, kind="stable")
    sorted_distances = distances[order]
    sorted_same = same[order]
    # Cut i predicts "same" for the i smallest distances: it is right on the same-person
    # pairs among them and on the different-person pairs among the rest.
    same_below = np.concatenate([[0], np.cumsum(sorted_same)])
    cut = np.arange(len(distances) + 1)
    different_above = (~same).sum() - (cut - same_below)
    correct = same_below + different_above
    # A cut between two equal distances cannot be realised by any threshold.
    valid = np.ones(len(cut), bool)
    valid[1:-1] = sorted_distances[1:] > sorted_distances[:-1]
    correct = np.where(valid, correct, -1)
    best = np.flatnonzero(correct == correct.max())
    i = int(best[(len(best) - 1) // 2])
    if i == 0:
        return float(np.nextafter(sorted_distances[0], -np.inf))
    if i == len(distances):
        return float(np.nextafter(sorted_distances[-1], np.inf))
    return float((sorted_distances[i - 1] + sorted_distances[i]) / 2)


def threshold_at_far(different_distances: np.ndarray, far_target: float) -> float:
    """Return the largest max_distance whose false accept rate on these pairs is at most far_target.

    With n different-person pairs, at most floor(far_target * n) of them may fall below the
    threshold, so the threshold is the next larger distance (exclusive).
    """
    if not 0.0 <= far_target < 1.0:
        raise InvalidInputError(f"far_target must be in [0, 1); got {far_target}")
    distances = np.sort(np.asarray(different_distances, np.float64))
    if len(distances) == 0:
        raise InvalidInputError("cannot choose a threshold for a false accept rate on zero different-person pairs")
    allowed = int(np.floor(far_target * len(distances) + 1e-9))
    return float(distances[allowed])


def rates(distances: np.ndarray, same: np.ndarray, max_distance: float) -> tuple[float, float, float]:
    """Return (accuracy, true accept rate, false accept rate) at one threshold."""
    distances, same = _check_pairs(distances, same)
    accepted = distances < max_distance
    accuracy = float(np.mean(accepted == same)) if len(same) else float("nan")
    tar = float(np.mean(accepted[same])) if same.any() else float("nan")
    far = float(np.mean(accepted[~same])) if (~same).any() else float("nan")
    return accuracy, tar, far


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the ROC curve as (false accept rates, true accept rates, max_distances).

    The points run from the threshold that accepts nothing to the one that accepts everything;
    point i is reached by accepting the pairs with distance < max_distances[i].
    """
    from sklearn.metrics import roc_curve

    distances, same = _check_pairs(distances, same)
    if same.all() or not same.any():
        raise InvalidInputError("a ROC curve needs both same-person and different-person pairs")
    far, tar, scores = roc_curve(same, -distances, drop_intermediate=False)
    return far, tar, np.nextafter(-scores, np.inf)


def auc(far: np.ndarray, tar: np.ndarray) -> float:
    """Return the area under a ROC curve (trapezoids; ties between classes count one half)."""
    return float(np.trapezoid(tar, far) if hasattr(np, "trapezoid") else np.trapz(tar, far))


def equal_error_rate(far: np.ndarray, tar: np.ndarray, max_distances: np.ndarray) -> tuple[float, float]:
    """Return (EER, max_distance at the EER) where the ROC curve crosses FAR = 1 - TAR.

    The crossing is interpolated linearly between the two ROC points around it. The threshold
    returned is the one of the first point at or past the crossing.
    """
    gap = far - (1.0 - tar)  # rises from -1 to +1 along the curve
    j = int(np.argmax(gap >= 0))
    if j == 0:
        return float(far[0]), float(max_distances[0])
    step = gap[j] - gap[j - 1]
    t = 0.0 if step == 0 else -gap[j - 1] / step
    eer = far[j - 1] + t * (far[j] - far[j - 1])
    return float(eer), float(max_distances[j])


def _fold_distances(distances: np.ndarray, n_folds: int) -> np.ndarray:
    """Return a folds x pairs array; 1-D distances are the same for every fold."""
    distances = np.asarray(distances, np.float64)
    if distances.ndim == 1:
        return np.broadcast_to(distances, (n_folds, len(distances)))
    if distances.ndim != 2 or distances.shape[0] != n_folds:
        raise InvalidInputError(
            f"per-fold distances must be a {n_folds} x pairs array; got shape {distances.shape}"
        )
    return distances


def kfold(distances: np.ndarray, same: np.ndarray, folds: np.ndarray,
          far_target: float = DEFAULT_FAR_TARGET) -> VerificationResult:
    """Run the k-fold protocol: thresholds chosen on k - 1 folds and scored on the held-out one.

    distances: one distance per pair, or a folds x pairs array when the distances depend on
    the training folds, as they do after subtracting the training folds' mean embedding. Row
    k is used when fold k is held out. folds: the fold number of each pair.
    """
    folds = np.asarray(folds)
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise InvalidInputError(f"the k-fold protocol needs at least 2 folds; got {len(fold_ids)}")
    per_fold = _fold_distances(distances, len(fold_ids))
    same = np.asarray(same, bool)
    results = []
    held_out = np.empty(len(same), np.float64)
    for row, fold in enumerate(fold_ids):
        test = folds == fold
        train = ~test
        fold_distances, _ = _check_pairs(per_fold[row], same)
        results.append(_score_split(int(fold), fold_distances[train], same[train],
                                    fold_distances[test], same[test], far_target))
        held_out[test] = fold_distances[test]
    return _summarise("k-fold", results, held_out, same, far_target)


def train_test(train_distances: np.ndarray, train_same: np.ndarray, test_distances: np.ndarray,
               test_same: np.ndarray, far_target: float = DEFAULT_FAR_TARGET) -> VerificationResult:
    """Choose the thresholds on one set of pairs and score them on another (LFW View 1)."""
    train_distances, train_same = _check_pairs(train_distances, train_same)
    test_distances, test_same = _check_pairs(test_distances, test_same)
    result = _score_split(0, train_distances, train_same, test_distances, test_same, far_target)
    return _summarise("train-test", [result], test_distances, test_same, far_target)


def _score_split(fold: int, train_distances, train_same, test_distances, test_same,
                 far_target: float) -> FoldResult:
    if len(test_distances) == 0:
        raise InvalidInputError(f"fold {fold} has no pairs to test")
    if not (~train_same).any():
        raise InvalidInputError(f"the training pairs of fold {fold} contain no different-person pair")
    max_distance = best_threshold(train_distances, train_same)
    accuracy, _, _ = rates(test_distances, test_same, max_distance)
    val_max_distance = threshold_at_far(train_distances[~train_same], far_target)
    _, val, far = rates(test_distances, test_same, val_max_distance)
    return FoldResult(fold=fold, pairs=len(test_distances), max_distance=max_distance, accuracy=accuracy,
                      val_max_distance=val_max_distance, val=val, far=far)


def _summarise(protocol: str, folds: list[FoldResult], distances: np.ndarray, same: np.ndarray,
               far_target: float) -> VerificationResult:
    far, tar, max_distances = roc(distances, same)
    eer, eer_max_distance = equal_error_rate(far, tar, max_distances)
    several = len(folds) > 1
    accuracies = np.array([f.accuracy for f in folds])
    vals = np.array([f.val for f in folds])
    return VerificationResult(
        protocol=protocol,
        pairs=int(len(same)),
        accuracy=float(accuracies.mean()),
        accuracy_std=float(accuracies.std()) if several else None,
        far_target=far_target,
        val=float(vals.mean()),
        val_std=float(vals.std()) if several else None,
        far=float(np.mean([f.far for f in folds])),
        auc=auc(far, tar),
        eer=eer,
        eer_max_distance=eer_max_distance,
        folds=folds,
        roc_far=far,
        roc_tar=tar,
    )


def plot_roc(result: VerificationResult, path: Path, title: str) -> Path:
    """Write the ROC curve as a PNG, false accept rate on a log axis, with the EER and VAL marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(6, 5), dpi=100)
    try:
        positive = result.roc_far > 0
        axes.plot(result.roc_far[positive], result.roc_tar[positive], lw=1.5, label="ROC")
        axes.plot([result.eer], [1 - result.eer], "o", label=f"EER {result.eer:.4f}")
        axes.plot([result.far_target], [result.val], "s",
                  label=f"VAL {result.val:.4f} at FAR {result.far_target:g}")
        axes.set_xscale("log")
        smallest = result.roc_far[positive].min() if positive.any() else 1e-4
        axes.set_xlim(min(smallest, result.far_target) / 2, 1.0)
        axes.set_ylim(max(0.0, min(result.roc_tar[positive].min(), result.val) - 0.02), 1.005)
        axes.set_xlabel("false accept rate")
        axes.set_ylabel("true accept rate")
        accuracy = f"accuracy {result.accuracy:.4f}"
        if result.accuracy_std is not None:
            accuracy += f" ± {result.accuracy_std:.4f}"
        axes.set_title(f"{title}\n{accuracy}, AUC {result.auc:.4f}, {result.pairs} pairs", fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
