"""Add a person to a published model without the pipeline: the quick path to a new version.

Enrollment detects, aligns and embeds only the new person's photos with the model's own IRs
and alignment settings. It reuses the training embeddings stored with the model (the gallery)
and refits the linear SVM on both. New rejection thresholds come from leaving people out of
the gallery and from the unknown people stored with it. The result is published as the next
version. The parent version is not changed. The full pipeline, with its held-out test photos
and accuracy gate, stays the audited path: an enrolled version has no test accuracy of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

from kubeface import stages
from kubeface.align import choose_face, crop_face
from kubeface.catalog import Catalog, check_name, resolve_model, split_model_uri
from kubeface.classifier import train_svm
from kubeface.datasets import check_person_name, printable_name
from kubeface.errors import DatasetError, InvalidInputError, KubefaceError
from kubeface.publish import MODEL_FILE
from kubeface.recognizer import Recognizer
from kubeface.rejection import DEFAULT_TARGET_FAR, ROC_PNG, calibrate, nearest_neighbours, plot_roc, roc_points

logger = logging.getLogger(__name__)

# Largest embedding distance at which an enrolled photo counts as a copy of a training photo.
DUPLICATE_DISTANCE = 0.1


@dataclasses.dataclass
class EnrolledPhoto:
    """One photo given for enrollment, with its outcome."""

    path: str
    sha256: str
    status: str
    """aligned, no_face, unreadable or duplicate."""
    reason: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def embed_photos(recognizer: Recognizer, paths: list[Path]) -> tuple[list[EnrolledPhoto], np.ndarray]:
    """Detect, choose, crop and embed the face of each photo; returns every photo and the embeddings."""
    from kubeface.imageio import read_image

    photos, crops, seen = [], [], set()
    for path in paths:
        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            photos.append(EnrolledPhoto(printable_name(str(path)), digest, "duplicate", "the same content was given earlier"))
            continue
        seen.add(digest)
        try:
            image = read_image(Path(path))
        except KubefaceError as error:
            photos.append(EnrolledPhoto(printable_name(str(path)), digest, "unreadable", str(error)))
            continue
        face = choose_face(recognizer.detector.detect(image), image.shape)
        if face is None:
            photos.append(EnrolledPhoto(printable_name(str(path)), digest, "no_face", "no face detected"))
            continue
        crops.append(crop_face(image, face, recognizer.align))
        photos.append(EnrolledPhoto(printable_name(str(path)), digest, "aligned"))
    size = recognizer.align.image_size
    embeddings = recognizer.embedder.embed(np.asarray(crops, np.uint8).reshape(-1, size, size, 3))
    return photos, embeddings


def _reject_other_people_photos(photos: list[EnrolledPhoto], new_embeddings: np.ndarray, gallery: np.ndarray,
                                gallery_names: list[str], person: str) -> None:
    """Raise DatasetError for photos that copy another person's training photo.

    Such a photo under a second name would corrupt the classes of both people. The same photo
    gives the same embedding (distance 0), while the two closest different photos of one person
    in the bundled demo set lie 0.36 apart.
    """
    if not len(new_embeddings) or not len(gallery):
        return
    used = [p for p in photos if p.status == "aligned"]
    nearest, distances = nearest_neighbours(new_embeddings, gallery)
    clashes = []
    for photo, index, distance in zip(used, nearest, distances):
        if distance <= DUPLICATE_DISTANCE and gallery_names[index] != person:
            clashes.append(f"{photo.path} (distance {distance:.3f} to a photo of {gallery_names[index]})")
    if clashes:
        raise DatasetError(
            f"{len(clashes)} of the photos given for {person!r} are training photos of other people: "
            + "; ".join(clashes) + "; remove them, or check that the person name is right"
        )


def destination(model_uri: str, store_uri: str | None, model_name: str | None) -> tuple[str, str, str | None]:
    """Return (store URI, model name, parent version) for the new version.

    A catalog URI gives its own store and name; options override them. A model folder needs both.
    """
    try:
        parent_store, parent_name, parent_version = split_model_uri(model_uri)
    except InvalidInputError:
        parent_store = parent_name = parent_version = None
    store_uri = store_uri or parent_store
    model_name = model_name or parent_name
    if not store_uri or not model_name:
        raise InvalidInputError(
            f"{model_uri} is a model folder, not a catalog URI STORE/models/NAME/VERSION; "
            "pass --store and --model-name to say where the new version goes"
        )
    return store_uri, check_name(model_name), parent_version


def enroll(
    model_uri: str,
    person: str,
    images: list[Path],
    store_uri: str | None = None,
    model_name: str | None = None,
    s3_endpoint: str | None = None,
    target_far: float | None = None,
) -> dict:
    """Publish a new version of a model with a person added (or more photos of a known person).

    Returns a summary with the new model URI, the photos used and the rejection thresholds.
    """
    # The same normal form as dataset folder names, so a name typed in either form is one person.
    person = check_person_name(unicodedata.normalize("NFC", person))
    if not images:
        raise InvalidInputError(f"no photos given for {person!r}; pass one or more image files or folders")
    store_uri, name, parent_version = destination(model_uri, store_uri, model_name)
    folder = resolve_model(model_uri, s3_endpoint)
    recognizer = Recognizer(folder)
    photos, new_embeddings = embed_photos(recognizer, images)
    if not len(new_embeddings):
        raise DatasetError(
            f"no face found in the {len(photos)} photos of {person!r}: "
            + "; ".join(f"{p.path}: {p.reason}" for p in photos)
        )
    with np.load(folder / "classifier" / stages.GALLERY_FILE, allow_pickle=False) as gallery:
        embeddings = gallery["embeddings"].astype(np.float32)
        names = [recognizer.classifier.classes[k] for k in gallery["labels"]]
        unknown = (
            gallery["unknown"] if "unknown" in gallery else np.zeros((0, embeddings.shape[1]), np.float32)
        )
        unknown_people = [str(p) for p in gallery["unknown_people"]] if "unknown_people" in gallery else []
    _reject_other_people_photos(photos, new_embeddings, embeddings, names, person)
    embeddings = np.concatenate([embeddings, new_embeddings])
    names += [person] * len(new_embeddings)
    settings = recognizer.classifier.settings
    model = train_svm(embeddings, names, c=float(settings.get("C", 1.0)), seed=int(settings.get("seed", 0)))
    target_far = (
        target_far
        if target_far is not None
        else (recognizer.info.get("rejection") or {}).get("target_far", DEFAULT_TARGET_FAR)
    )
    calibration = calibrate(
        embeddings,
        names,
        model,
        embeddings,
        unknown,
        unknown_people,
        target_far,
        seed=int(settings.get("seed", 0)),
        svm_c=float(settings.get("C", 1.0)),
    )
    enrollment = {
        "parent": model_uri,
        "parent_version": parent_version,
        "person": person,
        "new_person": person not in recognizer.classifier.classes,
        "added_photos": int(len(new_embeddings)),
        "photos": [p.to_json() for p in photos],
    }
    with tempfile.TemporaryDirectory(prefix="kubeface-enroll-") as scratch:
        target = Path(scratch) / "model"
        info = _assemble(
            folder,
            target,
            recognizer.info,
            model,
            embeddings,
            names,
            unknown,
            unknown_people,
            calibration,
            enrollment,
            name,
        )
        catalog = Catalog.open(store_uri, s3_endpoint)
        metadata = {
            "metrics": info["metrics"],
            "dataset": info["dataset"],
            "labels": info["labels"],
            "libraries": info["libraries"],
            "enrollment": {k: v for k, v in enrollment.items() if k != "photos"},
        }
        version = catalog.publish("models", name, target, metadata)
    uri = catalog.store.child_uri(f"models/{name}/{version}")
    logger.info("enrolled %s with %d photos: %s", person, len(new_embeddings), uri)
    return {
        "model_uri": uri,
        "version": version,
        "labels": info["labels"],
        "rejection": info["rejection"],
        **enrollment,
    }


def _assemble(
    parent: Path,
    folder: Path,
    parent_info: dict,
    model,
    embeddings: np.ndarray,
    names: list[str],
    unknown: np.ndarray,
    unknown_people: list[str],
    calibration,
    enrollment: dict,
    name: str,
) -> dict:
    """Write the new version's folder: the parent's IRs, the refitted classifier, gallery and report."""
    shutil.copytree(parent / "ir", folder / "ir")
    model.save(folder / "classifier")
    label_index = {person: k for k, person in enumerate(model.classes)}
    np.savez(
        folder / "classifier" / stages.GALLERY_FILE,
        embeddings=embeddings,
        labels=np.asarray([label_index[p] for p in names], np.int32),
        unknown=unknown,
        unknown_people=np.asarray(unknown_people, dtype=np.str_),
    )
    (folder / "validation").mkdir()
    rejection, details = {}, {"reason": "no impostor faces: needs 3 people or stored unknown people"}
    if calibration is not None:
        rejection = {k: v for k, v in calibration.report.items() if k != "false_accept_folds"}
        # Enrollment has no test photos: the true-accept rate is the one measured on training
        # photos held out of the leave-people-out folds.
        rejection["true_accept_rate"] = rejection["calibration"]["true_accept_rate"]
        rejection["true_accept_method"] = "training photos held out of the leave-people-out folds"
        impostors = calibration.unknown if len(calibration.unknown) else calibration.impostor
        curve = roc_points(calibration.genuine, impostors, "distance")
        details = {"false_accept_folds": calibration.report["false_accept_folds"], "roc": {"distance": curve}}
        plot_roc(
            {"distance": curve, "probability": roc_points(calibration.genuine, impostors, "probability")},
            None,
            folder / "validation" / ROC_PNG,
            f"{name} after enrolling {enrollment['person']}",
        )
    parent_metrics = parent_info.get("metrics", {})
    report = {
        "accuracy": None,
        "n_test": 0,
        "n_train": int(len(embeddings)),
        "classes": model.classes,
        "per_person": {},
        "passed": None,
        "reason": "enrolled without test photos",
        "parent_accuracy": parent_metrics.get("accuracy"),
        "enrollment": enrollment,
        "rejection": rejection,
        "rejection_details": details,
    }
    stages.write_json(folder / "validation" / stages.REPORT_FILE, report)
    info = {
        **parent_info,
        "name": name,
        "labels": model.classes,
        "rejection": rejection,
        "metrics": {
            "accuracy": None,
            "n_test": 0,
            "n_train": int(len(embeddings)),
            "passed": None,
            "parent_accuracy": parent_metrics.get("accuracy"),
            "enrolled": True,
        },
        "enrollment": {k: v for k, v in enrollment.items() if k != "photos"},
        "libraries": stages.library_versions(),
    }
    stages.write_json(folder / MODEL_FILE, info)
    return info


def summary_text(result: dict) -> str:
    """Return the lines `kubeface enroll` prints."""
    used = [p for p in result["photos"] if p["status"] == "aligned"]
    lines = [
        f"enrolled {result['person']}: {len(used)} of {len(result['photos'])} photos used"
        + ("" if result["new_person"] else " (added to a known person)")
    ]
    lines += [
        f"  {p['path']}: {p['status']} ({p['reason']})" for p in result["photos"] if p["status"] != "aligned"
    ]
    rejection = result["rejection"]
    if rejection:
        lines.append(
            f"unknown faces: rejected when distance > {rejection['max_distance']:.4f} or probability < "
            f"{rejection['min_probability']:.4f}"
        )
    lines.append(f"people: {len(result['labels'])}")
    lines.append(f"published: {result['model_uri']}")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False)
