"""The rule that returns "unknown": thresholds chosen on held-out people at a target false-accept rate.

A linear SVM names the most probable known person even for a stranger. A face is accepted only
when two scores pass their thresholds:

- distance: Euclidean distance from the face's embedding to the nearest training embedding
  (embeddings are L2-normalised, so it lies in [0, 2]); accepted when distance <= max_distance.
- probability: the SVM's probability of its chosen person; accepted when
  probability >= min_probability.

Both thresholds are measured, not guessed. Genuine scores come from training photos held out of
a model trained without them; impostor scores come from people absent from training: the people
left out of each fold of the training set (leave-some-people-out) and, when given, a folder of
unknown people scored against the final model. The pair of thresholds kept is the one that
accepts the most genuine faces with the right name while accepting at most the target share of
impostors.

Rates are measured on data that did not choose the thresholds: the true-accept rate on the
test photos, and the false-accept rate by cross-validation over people (each group of unknown
people, or of left-out training people, is scored with thresholds chosen without it).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import numpy as np

from kubeface.classifier import LinearSVM, train_svm
from kubeface.errors import InvalidInputError

logger = logging.getLogger(__name__)

DEFAULT_TARGET_FAR = 0.01
MAX_PEOPLE_FOLDS = 10
UNKNOWN_FOLDS = 5
# Embeddings are unit vectors, so no two are further apart than this.
MAX_EMBEDDING_DISTANCE = 2.0
ROC_PNG = "roc_curve.png"


def check_target_far(target_far: float) -> float:
    if not 0.0 <= target_far < 1.0:
        raise InvalidInputError(f"target_far must be in [0, 1), for example 0.01 for 1%; got {target_far}")
    return float(target_far)


@dataclasses.dataclass
class Scores:
    """The two rejection scores of N faces, with whether the SVM named each one right."""

    distance: np.ndarray
    """N distances to the nearest training embedding."""
    probability: np.ndarray
    """N SVM probabilities of the predicted person."""
    correct: np.ndarray
    """N bools: the predicted person is the true one (always False for unknown people)."""
    group: list[str]
    """N person names, used to keep one person's faces on one side of a cross-validation split."""

    @classmethod
    def empty(cls) -> "Scores":
        return cls(np.zeros(0), np.zeros(0), np.zeros(0, bool), [])

    def __len__(self) -> int:
        return len(self.distance)

    def subset(self, mask: np.ndarray) -> "Scores":
        return Scores(
            self.distance[mask],
            self.probability[mask],
            self.correct[mask],
            [g for g, keep in zip(self.group, mask) if keep],
        )

    @classmethod
    def concat(cls, parts: list["Scores"]) -> "Scores":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.distance for p in parts]),
            np.concatenate([p.probability for p in parts]),
            np.concatenate([p.correct for p in parts]),
            [g for p in parts for g in p.group],
        )


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """A face is accepted when distance <= max_distance and probability >= min_probability."""

    max_distance: float = MAX_EMBEDDING_DISTANCE
    min_probability: float = 0.0

    def accepts(self, distance: np.ndarray, probability: np.ndarray) -> np.ndarray:
        return (np.asarray(distance) <= self.max_distance) & (np.asarray(probability) >= self.min_probability)

    def to_json(self) -> dict:
        return {
            "max_distance": round(float(self.max_distance), 6),
            "min_probability": round(float(self.min_probability), 6),
        }


def nearest_neighbours(embeddings: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, for each of N embeddings, the index of the closest of M gallery rows and its Euclidean distance."""
    if len(embeddings) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    squared = (
        np.sum(embeddings.astype(np.float64) ** 2, axis=1)[:, None]
        + np.sum(gallery.astype(np.float64) ** 2, axis=1)[None, :]
        - 2.0 * embeddings.astype(np.float64) @ gallery.astype(np.float64).T
    )
    index = squared.argmin(axis=1)
    return index, np.sqrt(np.maximum(squared[np.arange(len(index)), index], 0.0))


def nearest_distances(embeddings: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Return, for each of N embeddings, the Euclidean distance to the closest of M gallery rows."""
    return nearest_neighbours(embeddings, gallery)[1]


def score_faces(
    model: LinearSVM, gallery: np.ndarray, embeddings: np.ndarray, truth: list[str] | None
) -> Scores:
    """Score embeddings against one model; truth None marks faces of people absent from training."""
    if len(embeddings) == 0:
        return Scores.empty()
    names, probability = model.predict(embeddings)
    if truth is None:
        correct = np.zeros(len(names), bool)
        group = ["unknown"] * len(names)
    else:
        correct = np.asarray([n == t for n, t in zip(names, truth)], bool)
        group = list(truth)
    return Scores(nearest_distances(embeddings, gallery), np.asarray(probability, np.float64), correct, group)


def _cut_points(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Return thresholds between consecutive distinct values, plus both ends of the range."""
    unique = np.unique(np.clip(values, low, high))
    middles = (unique[:-1] + unique[1:]) / 2 if len(unique) > 1 else np.zeros(0)
    return np.unique(np.concatenate([[low, high], middles]))


def choose_thresholds(genuine: Scores, impostor: Scores, target_far: float) -> Thresholds:
    """Return the thresholds that name the most genuine faces right with at most target_far impostors.

    Candidates lie halfway between consecutive observed scores, so a chosen threshold keeps a
    margin to the faces on both sides of it. Among pairs that accept the same genuine faces,
    the one accepting fewer impostors wins, then the strictest pair: it still accepts every
    genuine face seen here and rejects as much as possible of what was not seen. The genuine
    scores come from models trained on fewer photos than the final one, which gives genuine
    faces of the final model some room below max_distance.
    """
    if len(genuine) == 0 or len(impostor) == 0:
        raise InvalidInputError(
            f"choosing thresholds needs genuine and impostor faces; got {len(genuine)} "
            f"genuine and {len(impostor)} impostor faces"
        )
    allowed = int(np.floor(target_far * len(impostor) + 1e-9))
    distances = _cut_points(
        np.concatenate([genuine.distance, impostor.distance]), 0.0, MAX_EMBEDDING_DISTANCE
    )
    probabilities = _cut_points(np.concatenate([genuine.probability, impostor.probability]), 0.0, 1.0)
    best_key, best = None, Thresholds()
    for d_index, max_distance in enumerate(distances):
        # For this max_distance, count the faces accepted at every min_probability candidate.
        genuine_p = np.sort(genuine.probability[genuine.correct & (genuine.distance <= max_distance)])
        impostor_p = np.sort(impostor.probability[impostor.distance <= max_distance])
        true_accepts = len(genuine_p) - np.searchsorted(genuine_p, probabilities, side="left")
        false_accepts = len(impostor_p) - np.searchsorted(impostor_p, probabilities, side="left")
        feasible = np.flatnonzero(false_accepts <= allowed)
        if not len(feasible):
            continue
        # Most true accepts, then fewest false accepts, then the highest min_probability.
        order = np.lexsort((-feasible, false_accepts[feasible], -true_accepts[feasible]))
        p_index = feasible[order[0]]
        key = (true_accepts[p_index], -false_accepts[p_index], -d_index, p_index)
        if best_key is None or key > best_key:
            best_key = key
            best = Thresholds(float(max_distance), float(probabilities[p_index]))
    return best


def rates(thresholds: Thresholds, scores: Scores) -> dict:
    """Return how many faces are accepted, and accepted with the right name, under thresholds."""
    accepted = thresholds.accepts(scores.distance, scores.probability)
    n = len(scores)
    return {
        "n": n,
        "accepted": int(accepted.sum()),
        "accepted_correct": int((accepted & scores.correct).sum()),
        "accept_rate": float(accepted.mean()) if n else None,
        "true_accept_rate": float((accepted & scores.correct).mean()) if n else None,
    }


def people_folds(people: list[str], seed: int) -> list[list[str]]:
    """Split the people into at most MAX_PEOPLE_FOLDS groups, in a seeded order."""
    order = [people[i] for i in np.random.default_rng(seed).permutation(len(people))]
    count = min(len(people), MAX_PEOPLE_FOLDS)
    return [sorted(order[k::count]) for k in range(count)]


def leave_people_out(
    embeddings: np.ndarray, labels: list[str], seed: int = 0, svm_c: float = 1.0
) -> tuple[Scores, Scores, list[list[str]]]:
    """Score training photos with models that never saw them: genuine and impostor faces.

    Each fold leaves one group of people out entirely, and their photos become impostors. It
    also holds out a share of every other person's photos, which become genuine faces. A
    classifier and gallery fitted on the rest score both. A person with one photo is never held
    out. Returns
    (genuine, impostor, the people left out in each fold). Needs at least 3 people.
    """
    people = sorted(set(labels))
    if len(people) < 3:
        raise InvalidInputError(f"leave-people-out calibration needs at least 3 people; got {len(people)}")
    labels_array = np.asarray(labels)
    folds = people_folds(people, seed)
    fold_of_person = {p: k for k, group in enumerate(folds) for p in group}
    rng = np.random.default_rng(seed + 1)
    holdout_fold = np.full(len(labels), -1)
    for person in people:
        indices = np.flatnonzero(labels_array == person)
        if len(indices) < 2:
            continue
        others = [k for k in range(len(folds)) if k != fold_of_person[person]]
        for position, i in enumerate(indices[rng.permutation(len(indices))]):
            holdout_fold[i] = others[position % len(others)]
    genuine, impostor = [], []
    for k, left_out in enumerate(folds):
        out_mask = np.isin(labels_array, left_out)
        probe_mask = (holdout_fold == k) & ~out_mask
        fit_mask = ~out_mask & ~probe_mask
        with warnings.catch_warnings():
            # scikit-learn 1.9 deprecates SVC(probability=True) with a FutureWarning; the train
            # stage's own fit already shows it once, so the folds do not repeat it.
            warnings.simplefilter("ignore", FutureWarning)
            model = train_svm(embeddings[fit_mask], list(labels_array[fit_mask]), c=svm_c, seed=seed)
        gallery = embeddings[fit_mask]
        genuine.append(score_faces(model, gallery, embeddings[probe_mask], list(labels_array[probe_mask])))
        strangers = score_faces(model, gallery, embeddings[out_mask], list(labels_array[out_mask]))
        strangers.correct[:] = False
        impostor.append(strangers)
    return Scores.concat(genuine), Scores.concat(impostor), folds


def _unknown_folds(groups: list[str], seed: int) -> np.ndarray:
    """Assign each unknown face to one of up to UNKNOWN_FOLDS folds, one person per fold."""
    people = sorted(set(groups))
    order = [people[i] for i in np.random.default_rng(seed + 2).permutation(len(people))]
    count = min(len(people), UNKNOWN_FOLDS)
    fold_of = {p: position % count for position, p in enumerate(order)}
    return np.asarray([fold_of[g] for g in groups])


def cross_validated_far(
    genuine: Scores,
    genuine_folds: np.ndarray,
    impostor: Scores,
    impostor_folds: np.ndarray,
    measured: np.ndarray,
    target_far: float,
) -> dict:
    """Measure the false-accept rate on impostor faces that did not choose the thresholds.

    measured marks the impostors to measure. The measured faces of fold k are scored with
    thresholds chosen without any face of fold k, genuine or impostor.
    """
    accepted = 0
    per_fold = []
    for k in np.unique(impostor_folds[measured]):
        inside = impostor_folds == k
        thresholds = choose_thresholds(
            genuine.subset(genuine_folds != k), impostor.subset(~inside), target_far
        )
        test = impostor.subset(inside & measured)
        fold_accepted = int(thresholds.accepts(test.distance, test.probability).sum())
        accepted += fold_accepted
        per_fold.append(
            {
                "fold": int(k),
                "people": sorted(set(test.group)),
                "faces": len(test),
                "accepted": fold_accepted,
                **thresholds.to_json(),
            }
        )
    n = int(measured.sum())
    return {"false_accept_rate": accepted / n if n else None, "n": n, "accepted": accepted, "folds": per_fold}


@dataclasses.dataclass
class Calibration:
    """Chosen thresholds with the scores and measurements behind them."""

    thresholds: Thresholds
    genuine: Scores
    impostor: Scores
    unknown: Scores
    report: dict


def calibrate(
    embeddings: np.ndarray,
    labels: list[str],
    model: LinearSVM,
    gallery: np.ndarray,
    unknown_embeddings: np.ndarray,
    unknown_groups: list[str],
    target_far: float = DEFAULT_TARGET_FAR,
    seed: int = 0,
    svm_c: float = 1.0,
) -> Calibration | None:
    """Choose the rejection thresholds for model and measure their false-accept rate honestly.

    embeddings and labels are the training photos, gallery the final model's training
    embeddings, and unknown_* the faces of people absent from training. Returns None when no
    impostor faces can be had (fewer than 3 people and no unknown people).
    """
    target_far = check_target_far(target_far)
    people = sorted(set(labels))
    if len(people) >= 3:
        genuine, left_out, people_groups = leave_people_out(embeddings, labels, seed, svm_c)
    else:
        genuine, left_out, people_groups = Scores.empty(), Scores.empty(), []
    fold_of_person = {p: k for k, group in enumerate(people_groups) for p in group}
    genuine_folds = np.asarray([fold_of_person[g] for g in genuine.group], int)
    left_out_folds = np.asarray([fold_of_person[g] for g in left_out.group], int)
    unknown = score_faces(model, gallery, unknown_embeddings, None)
    unknown.group = list(unknown_groups)
    impostor = Scores.concat([left_out, unknown])
    if len(genuine) == 0 or len(impostor) == 0:
        logger.warning(
            "no rejection thresholds: %d genuine and %d impostor faces (needs 3 people or "
            "an unknown-people folder)",
            len(genuine),
            len(impostor),
        )
        return None
    thresholds = choose_thresholds(genuine, impostor, target_far)
    n_folds = len(people_groups)
    if len(unknown):
        # Unknown people get folds of their own; training folds are shifted out of their way.
        genuine_folds = genuine_folds + UNKNOWN_FOLDS
        folds = np.concatenate([left_out_folds + UNKNOWN_FOLDS, _unknown_folds(list(unknown_groups), seed)])
        measured = np.concatenate([np.zeros(len(left_out), bool), np.ones(len(unknown), bool)])
        method = (
            f"{min(len(set(unknown_groups)), UNKNOWN_FOLDS)}-fold cross-validation over the unknown people: "
            "each fold is scored with thresholds chosen without its people"
        )
    else:
        folds = left_out_folds
        measured = np.ones(len(left_out), bool)
        method = (
            f"{n_folds}-fold cross-validation over the training people left out: each fold "
            "is scored with thresholds chosen without its people"
        )
    far = cross_validated_far(genuine, genuine_folds, impostor, folds, measured, target_far)
    report = {
        **thresholds.to_json(),
        "target_far": target_far,
        "rule": "accept when distance <= max_distance and probability >= min_probability",
        "distance": "Euclidean distance to the nearest training embedding",
        "calibration": {
            "genuine_faces": len(genuine),
            "impostor_faces": len(impostor),
            "left_out_faces": len(left_out),
            "unknown_faces": len(unknown),
            "people_folds": n_folds,
            "true_accept_rate": rates(thresholds, genuine)["true_accept_rate"],
            "false_accept_rate": rates(thresholds, impostor)["accept_rate"],
        },
        "false_accept_rate": far["false_accept_rate"],
        "false_accept_method": method,
        "false_accept_folds": far["folds"],
        "n_impostor_measured": far["n"],
    }
    return Calibration(thresholds, genuine, impostor, unknown, report)


def roc_points(genuine: Scores, impostor: Scores, score: str) -> dict:
    """Return the ROC curve of one score: false-accept rate, true-accept rate and threshold.

    score is "distance" (accept when below the threshold) or "probability" (above). A genuine
    face counts as a true accept only when it is also named right.
    """
    higher_accepts = score == "probability"
    g = genuine.probability if higher_accepts else genuine.distance
    i = impostor.probability if higher_accepts else impostor.distance
    values = np.unique(np.concatenate([g, i]))
    if higher_accepts:
        values = values[::-1]
    # The first point accepts nothing: a threshold just beyond the most genuine-looking score.
    fpr, tpr, thresholds = [0.0], [0.0], [0.0]
    if len(values):
        thresholds = [float(values[0] + 1e-6) if higher_accepts else float(values[0] - 1e-6)]
    for value in values:
        accept_g = (g >= value) if higher_accepts else (g <= value)
        accept_i = (i >= value) if higher_accepts else (i <= value)
        tpr.append(float((accept_g & genuine.correct).mean()) if len(g) else 0.0)
        fpr.append(float(accept_i.mean()) if len(i) else 0.0)
        thresholds.append(float(value))
    return {"fpr": fpr, "tpr": tpr, "thresholds": thresholds}


def plot_roc(curves: dict, operating_point: tuple[float, float] | None, path: Path, title: str) -> None:
    """Draw ROC curves (name -> roc_points) and the chosen operating point as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 5))
    for name, curve in curves.items():
        axes.step(curve["fpr"], curve["tpr"], where="post", label=name)
    if operating_point is not None:
        axes.plot(
            [operating_point[0]],
            [operating_point[1]],
            "o",
            color="black",
            label=f"chosen thresholds (FAR {operating_point[0]:.3f}, TAR {operating_point[1]:.3f})",
        )
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_xlabel("false-accept rate (unknown people accepted)")
    axes.set_ylabel("true-accept rate (known people named right)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
