"""Held-out accuracy, per-person precision and recall, the confusion matrix, and the gate."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kubeface.classifier import LinearSVM
from kubeface.comparison import compare, find_published, not_worse
from kubeface.errors import InvalidInputError, KubefaceError
from kubeface.rejection import (
    DEFAULT_TARGET_FAR,
    ROC_PNG,
    calibrate,
    check_target_far,
    plot_roc,
    rates,
    roc_points,
    score_faces,
)
from kubeface.stages import EMBEDDINGS_FILE, GALLERY_FILE, REPORT_FILE, SPLIT_FILE, read_json, write_json

logger = logging.getLogger(__name__)

DEFAULT_MIN_ACCURACY = 0.9
CONFUSION_PNG = "confusion_matrix.png"


def confusion_matrix(truth: list[str], predicted: list[str], classes: list[str]) -> np.ndarray:
    """Return the K x K counts; rows are the true person, columns the predicted one."""
    index = {name: k for k, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        matrix[index[t], index[p]] += 1
    return matrix


def per_person(matrix: np.ndarray, classes: list[str]) -> dict:
    """Return precision, recall and support per person; an undefined ratio is None."""
    out = {}
    for k, name in enumerate(classes):
        tp = int(matrix[k, k])
        predicted = int(matrix[:, k].sum())
        actual = int(matrix[k].sum())
        out[name] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / actual if actual else None,
            "support": actual,
        }
    return out


def plot_confusion(matrix: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """Draw the confusion matrix with counts in each cell as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(5.0, 0.55 * len(classes) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(classes)), labels=classes, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(classes)), labels=classes, fontsize=8)
    axes.set_xlabel("predicted person")
    axes.set_ylabel("true person")
    axes.set_title(title)
    top = matrix.max() if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if count > top / 2 else "black"
            axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run_validate(train_dir: Path, output_dir: Path, min_accuracy: float = DEFAULT_MIN_ACCURACY,
                 target_far: float = DEFAULT_TARGET_FAR, require_not_worse: bool = False, store_uri: str = "",
                 model_name: str = "", s3_endpoint: str = "") -> dict:
    """Score the held-out photos, choose the rejection thresholds and decide whether the model passes.

    With model_name, the model is compared with the latest version published under that name
    in the store (store_uri, "" for the default store). require_not_worse then also fails a
    model whose accuracy is lower than that version's on the same test photos.
    """
    if not 0.0 <= min_accuracy <= 1.0:
        raise InvalidInputError(f"min_accuracy must be in [0, 1]; got {min_accuracy}")
    check_target_far(target_far)
    train_dir, output_dir = Path(train_dir), Path(output_dir)
    model = LinearSVM.load(train_dir / "classifier")
    split = read_json(train_dir / SPLIT_FILE)
    with np.load(train_dir / EMBEDDINGS_FILE, allow_pickle=False) as data:
        embeddings = data["embeddings"]
    rows = split["rows"]
    test = split["test"]
    truth = [rows[i]["person"] for i in test]
    predicted, probabilities = model.predict(embeddings[test]) if test else ([], np.zeros(0))
    matrix = confusion_matrix(truth, predicted, model.classes)
    correct = int(np.trace(matrix))
    accuracy = correct / len(test) if test else 0.0
    passed = bool(test) and accuracy >= min_accuracy
    reason = "no test photos" if not test else (
        f"accuracy {accuracy:.4f} {'>=' if passed else '<'} min_accuracy {min_accuracy}")
    report = {
        "accuracy": accuracy, "correct": correct, "n_test": len(test), "n_train": len(split["train"]),
        "min_accuracy": min_accuracy, "passed": passed, "reason": reason, "classes": model.classes,
        "confusion_matrix": matrix.tolist(), "per_person": per_person(matrix, model.classes),
        "errors": [{"path": rows[i]["path"], "person": t, "predicted": p, "probability": float(q)}
                   for i, t, p, q in zip(test, truth, predicted, probabilities) if t != p],
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    report.update(_open_set(train_dir, split, embeddings, model, target_far, output_dir))
    report["comparison"] = None
    if model_name:
        try:
            previous = find_published(store_uri, model_name, s3_endpoint)
            if previous is not None:
                report["comparison"] = compare(previous, truth, predicted, embeddings[test], accuracy,
                                               model.classes, split.get("facenet"), split["align"])
        except KubefaceError as error:
            if require_not_worse:
                raise
            # Without the not-worse gate a broken earlier version must not block this model.
            logger.warning("could not compare with the published %s: %s", model_name, error)
            report["comparison_error"] = str(error)
    report["require_not_worse"] = require_not_worse
    if require_not_worse:
        better, comparison_reason = not_worse(report["comparison"])
        report["passed"] = report["passed"] and better
        report["reason"] = f"{report['reason']}; {comparison_reason}"
    write_json(output_dir / REPORT_FILE, report)
    plot_confusion(matrix, model.classes, output_dir / CONFUSION_PNG,
                   f"held-out accuracy {accuracy:.3f} ({correct}/{len(test)})")
    logger.info("validation: %s", report["reason"])
    return report


def _open_set(train_dir: Path, split: dict, embeddings: np.ndarray, model: LinearSVM, target_far: float,
              output_dir: Path) -> dict:
    """Choose the rejection thresholds, measure them on the test photos and draw the ROC curves."""
    rows, train, test = split["rows"], split["train"], split["test"]
    unknown = split.get("unknown", [])
    with np.load(train_dir / "classifier" / GALLERY_FILE, allow_pickle=False) as data:
        gallery = data["embeddings"]
    calibration = calibrate(embeddings[train], [rows[i]["person"] for i in train], model, gallery,
                            embeddings[unknown], [rows[i]["person"] for i in unknown], target_far,
                            seed=split["seed"], svm_c=split.get("svm_c", 1.0))
    if calibration is None:
        return {"rejection": {}, "rejection_details": {
            "reason": "no impostor faces: needs 3 people in the training set or an unknown-people folder"}}
    known = score_faces(model, gallery, embeddings[test], [rows[i]["person"] for i in test])
    thresholds = calibration.thresholds
    measured = rates(thresholds, known)
    rejection = {**{k: v for k, v in calibration.report.items() if k != "false_accept_folds"},
                 "true_accept_rate": measured["true_accept_rate"], "accept_rate": measured["accept_rate"],
                 "n_known_test": len(known)}
    impostors, source = (calibration.unknown, "unknown people") if len(calibration.unknown) else (
        calibration.impostor, "training people left out")
    distance_curve = roc_points(known, impostors, "distance")
    curves = {f"distance ({len(impostors)} faces of {source})": distance_curve,
              f"probability ({len(impostors)} faces of {source})": roc_points(known, impostors, "probability")}
    point = None
    if rejection["false_accept_rate"] is not None and rejection["true_accept_rate"] is not None:
        point = (rejection["false_accept_rate"], rejection["true_accept_rate"])
    plot_roc(curves, point, output_dir / ROC_PNG, f"unknown-face rejection, target FAR {target_far:g}")
    accepted = thresholds.accepts(known.distance, known.probability)
    details = {
        "false_accept_folds": calibration.report["false_accept_folds"],
        "roc_impostors": source,
        "roc": {"distance": distance_curve},
        "rejected_known": [{"path": rows[i]["path"], "person": rows[i]["person"], "distance": float(d),
                            "probability": float(p)}
                           for i, d, p, ok in zip(test, known.distance, known.probability, accepted) if not ok],
    }
    return {"rejection": rejection, "rejection_details": details}
