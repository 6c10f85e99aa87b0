"""Assemble a validated model into one folder and publish it as a new catalog version."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from kubeface import stages
from kubeface.catalog import Catalog, check_name
from kubeface.errors import InvalidInputError
from kubeface.rejection import ROC_PNG
from kubeface.validation import CONFUSION_PNG

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "facenet-classifier"
MODEL_FILE = "model.json"
MODEL_FORMAT = 1


def assemble(ir_dir: Path, train_dir: Path, validation_dir: Path, folder: Path, name: str) -> dict:
    """Copy the IRs, classifier and validation results into folder and write model.json."""
    shutil.copytree(ir_dir, folder / "ir")
    shutil.copytree(Path(train_dir) / "classifier", folder / "classifier")
    (folder / "validation").mkdir()
    for file_name in (stages.REPORT_FILE, CONFUSION_PNG, ROC_PNG):
        if file_name == ROC_PNG and not (Path(validation_dir) / file_name).is_file():
            continue  # no rejection thresholds could be chosen
        shutil.copy2(Path(validation_dir) / file_name, folder / "validation" / file_name)
    split = stages.read_json(Path(train_dir) / stages.SPLIT_FILE)
    report = stages.read_json(Path(validation_dir) / stages.REPORT_FILE)
    classes = json.loads((folder / "classifier" / "classifier.json").read_text(encoding="utf-8"))["classes"]
    model = {
        "format": MODEL_FORMAT,
        "name": name,
        "labels": classes,
        "align": split["align"],
        "embed": split.get("embed"),
        "dataset": split["dataset"],
        "test_dataset": split["test_dataset"],
        "unknown_dataset": split.get("unknown_dataset"),
        "metrics": {"accuracy": report["accuracy"], "n_test": report["n_test"], "n_train": report["n_train"],
                    "min_accuracy": report["min_accuracy"], "passed": report["passed"]},
        "rejection": report.get("rejection", {}),
        "libraries": stages.library_versions(),
    }
    stages.write_json(folder / MODEL_FILE, model)
    return model


def run_publish(store_uri: str, model_name: str, ir_dir: Path, train_dir: Path, validation_dir: Path,
                s3_endpoint: str = "") -> str:
    """Publish a model that passed validation; returns its model URI."""
    check_name(model_name)
    report = stages.read_json(Path(validation_dir) / stages.REPORT_FILE)
    if not report["passed"]:
        raise InvalidInputError(f"model did not pass validation ({report['reason']}); it is not published")
    catalog = Catalog.open(store_uri, s3_endpoint or None)
    with tempfile.TemporaryDirectory(prefix="kubeface-publish-") as scratch:
        folder = Path(scratch) / "model"
        folder.mkdir()
        model = assemble(Path(ir_dir), Path(train_dir), Path(validation_dir), folder, model_name)
        metadata = {"metrics": model["metrics"], "dataset": model["dataset"], "labels": model["labels"],
                    "libraries": model["libraries"]}
        version = catalog.publish("models", model_name, folder, metadata)
    return catalog.store.child_uri(f"models/{model_name}/{version}")


def summary(train_dir: Path, validation_dir: Path, model_uri: str) -> dict:
    """Return the run summary that `kubeface run --json` prints."""
    split = stages.read_json(Path(train_dir) / stages.SPLIT_FILE)
    report = stages.read_json(Path(validation_dir) / stages.REPORT_FILE)
    skipped = (split["skipped"] + split["unusable"] + split.get("dropped_people", []) + split["duplicates"]
               + split["excluded"])
    return {
        "accuracy": report["accuracy"],
        "passed": report["passed"],
        "reason": report["reason"],
        "published": bool(model_uri),
        "model_uri": model_uri or None,
        "labels": report["classes"],
        "skipped": skipped,
        "n_train": report["n_train"],
        "n_test": report["n_test"],
        "errors": report["errors"],
        "notes": split["notes"],
        "several_faces": split.get("several_faces", []),
        "dataset": split["dataset"],
        "duplicates": len(split["duplicates"]),
        "n_unknown": len(split.get("unknown", [])),
        "cache": split.get("cache"),
        "rejection": report.get("rejection", {}),
        "comparison": _comparison_summary(report.get("comparison")),
    }


def _comparison_summary(comparison: dict | None) -> dict | None:
    """Return the headline of a comparison with the published version, without the per-person table."""
    if comparison is None:
        return None
    keys = ("version", "model_uri", "basis", "accuracy_before", "accuracy_after", "accuracy_change",
            "people_added", "people_removed", "recall_dropped")
    return {key: comparison.get(key) for key in keys}
