"""Compare a newly trained model with the version currently published under the same name.

The fairest comparison scores both classifiers on the same test photos. That works when the
published version embedded its photos with the same FaceNet IR and alignment settings, because
its classifier then reads this run's embeddings. The published classifier is loaded from the
store with its checksums verified and scored here. Otherwise the comparison falls back to the
accuracy that the published version reported on its own test photos, and records that basis.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from kubeface.catalog import MANIFEST, Catalog, sha256_bytes
from kubeface.classifier import ARRAYS_FILE, META_FILE, LinearSVM
from kubeface.errors import ChecksumError, NotFoundError

logger = logging.getLogger(__name__)

SAME_TEST_PHOTOS = "same test photos"
PUBLISHED_FIGURES = "published figures"


class PublishedModel:
    """The files of a published version needed to compare with it, read without its IRs."""

    def __init__(self, catalog: Catalog, name: str, version: str):
        self.catalog = catalog
        self.name = name
        self.version = version
        self.prefix = f"models/{name}/{version}"
        self.uri = catalog.store.child_uri(self.prefix)
        self.manifest = catalog.manifest("models", name, version)
        self.files = {entry["path"]: entry for entry in self.manifest["files"]}
        self.info = json.loads(self.read("model.json"))
        self.report = json.loads(self.read("validation/report.json"))

    def read(self, path: str) -> bytes:
        """Return one file of the version, checked against the manifest's sha256."""
        entry = self.files.get(path)
        if entry is None:
            raise ChecksumError(f"{self.uri}/{MANIFEST} does not list {path}")
        data = self.catalog.store.read_bytes(f"{self.prefix}/{path}")
        if sha256_bytes(data) != entry["sha256"]:
            raise ChecksumError(
                f"{self.uri}/{path} has sha256 {sha256_bytes(data)}, expected {entry['sha256']}"
            )
        return data

    def classifier(self) -> LinearSVM:
        """Load the published classifier from its verified arrays and JSON."""
        with tempfile.TemporaryDirectory(prefix="kubeface-compare-") as scratch:
            folder = Path(scratch)
            for name in (ARRAYS_FILE, META_FILE):
                (folder / name).write_bytes(self.read(f"classifier/{name}"))
            return LinearSVM.load(folder)

    def embeds_like(self, facenet_files: dict | None, align: dict) -> tuple[bool, str]:
        """Return whether this version's embeddings match the given FaceNet IR and alignment."""
        if facenet_files is None:
            return False, "this run did not record its FaceNet IR checksums"
        for kind in ("xml", "bin"):
            published = self.files.get(f"ir/facenet.{kind}", {}).get("sha256")
            if published != facenet_files.get(f"{kind}_sha256"):
                return (
                    False,
                    f"version {self.version} was embedded with a different FaceNet IR ({kind} file differs)",
                )
        if self.info.get("align") != align:
            return (
                False,
                f"version {self.version} was aligned with {self.info.get('align')}, this run with {align}",
            )
        return True, ""


def find_published(store_uri: str, name: str, s3_endpoint: str = "") -> PublishedModel | None:
    """Return the latest sealed version of a model name, or None when there is none."""
    catalog = Catalog.open(store_uri or None, s3_endpoint or None)
    versions = catalog.versions("models", name)
    if not versions:
        return None
    try:
        return PublishedModel(catalog, name, versions[-1])
    except NotFoundError as error:
        raise NotFoundError(f"model {name} version {versions[-1]} is incomplete: {error}") from error


def recall_by_person(truth: list[str], predicted: list[str]) -> dict:
    """Return, for each true person, the share of their test photos named right."""
    out = {}
    for person in sorted(set(truth)):
        hits = [p == person for t, p in zip(truth, predicted) if t == person]
        out[person] = sum(hits) / len(hits)
    return out


def compare(
    previous: PublishedModel,
    truth: list[str],
    predicted: list[str],
    test_embeddings: np.ndarray,
    accuracy: float,
    classes: list[str],
    facenet_files: dict | None,
    align: dict,
) -> dict:
    """Compare this run's predictions on its test photos with the published version's."""
    before_classes = list(previous.info.get("labels", []))
    result = {
        "version": previous.version,
        "model_uri": previous.uri,
        "published_accuracy": previous.report.get("accuracy"),
        "published_n_test": previous.report.get("n_test"),
        "accuracy_after": accuracy,
        "people_added": sorted(set(classes) - set(before_classes)),
        "people_removed": sorted(set(before_classes) - set(classes)),
    }
    comparable, why_not = previous.embeds_like(facenet_files, align)
    after = recall_by_person(truth, predicted)
    if comparable and len(test_embeddings):
        before_predicted, _ = previous.classifier().predict(test_embeddings)
        before = recall_by_person(truth, before_predicted)
        correct = sum(t == p for t, p in zip(truth, before_predicted))
        result.update(basis=SAME_TEST_PHOTOS, accuracy_before=correct / len(truth))
    else:
        before = {
            person: values.get("recall") for person, values in previous.report.get("per_person", {}).items()
        }
        result.update(
            basis=PUBLISHED_FIGURES,
            accuracy_before=previous.report.get("accuracy"),
            basis_reason=why_not or "no test photos",
        )
    result["accuracy_change"] = (
        accuracy - result["accuracy_before"] if result["accuracy_before"] is not None else None
    )
    per_person = {}
    for person in sorted(set(after) | set(before)):
        old, new = before.get(person), after.get(person)
        per_person[person] = {
            "recall_before": old,
            "recall_after": new,
            "change": new - old if old is not None and new is not None else None,
        }
    result["per_person"] = per_person
    result["recall_dropped"] = sorted(
        p for p, v in per_person.items() if v["change"] is not None and v["change"] < 0
    )
    return result


def not_worse(comparison: dict | None) -> tuple[bool, str]:
    """Apply the "not worse than the published version" rule; returns (passed, reason)."""
    if comparison is None:
        return True, "no published version to compare with"
    before, after = comparison["accuracy_before"], comparison["accuracy_after"]
    if before is None:
        return True, f"version {comparison['version']} reported no accuracy"
    verdict = ">=" if after >= before else "<"
    return after >= before, (
        f"accuracy {after:.4f} {verdict} {before:.4f} of version {comparison['version']} "
        f"({comparison['basis']})"
    )
