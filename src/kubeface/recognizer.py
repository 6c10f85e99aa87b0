"""Load a published model and recognize the faces in photos."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from kubeface import convert
from kubeface.align import AlignSettings, crop_face
from kubeface.catalog import MANIFEST, parse_manifest, resolve_model
from kubeface.classifier import LinearSVM
from kubeface.detect import Detector, DetectorSettings
from kubeface.embed import Embedder, EmbedSettings
from kubeface.errors import ModelError
from kubeface.faces import Face
from kubeface.publish import MODEL_FILE, MODEL_FORMAT

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Recognition:
    """The faces found in one image, with the image size and per-stage timings in ms."""

    faces: list[Face]
    width: int
    height: int
    timings_ms: dict

    def to_json(self) -> dict:
        return {"faces": [f.to_json() for f in self.faces], "width": self.width, "height": self.height,
                "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()}}


def model_format_message(path: Path, info: dict) -> str:
    """Explain a model format this kubeface cannot read, naming the versions on both sides."""
    from kubeface.stages import library_versions

    written = info.get("libraries", {})
    installed = library_versions()
    differing = [f"{name} {written[name]} (here {installed[name]})" for name in sorted(written)
                 if name in installed and written[name] != installed[name]]
    return (
        f"{path} has model format {info.get('format')}, and this kubeface {installed['kubeface']} reads format "
        f"{MODEL_FORMAT}; versions that differ from the ones that wrote it: {', '.join(differing) or 'none'}; "
        f"install kubeface {written.get('kubeface', '(unknown)')} to use it, or retrain"
    )


class Recognizer:
    """Detector, embedder and classifier of one published model version."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        self.manifest = parse_manifest(manifest_path.read_bytes(), str(manifest_path))
        try:
            self.info = json.loads((self.folder / MODEL_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise ModelError(f"{self.folder / MODEL_FILE} is missing; this folder is not a kubeface model") from error
        except ValueError as error:
            raise ModelError(f"{self.folder / MODEL_FILE} is not valid JSON ({error}); this model is damaged, "
                             "so publish it again") from error
        if self.info.get("format") != MODEL_FORMAT:
            raise ModelError(model_format_message(self.folder / MODEL_FILE, self.info))
        ir_dir = self.folder / "ir"
        convert.read_ir_info(ir_dir)
        # Models written before a setting existed were made with its old value, not today's default.
        self.align = AlignSettings.from_json(self.info["align"])
        self.detector = Detector(ir_dir, DetectorSettings())
        self.embedder = Embedder(ir_dir, settings=EmbedSettings.from_json(self.info.get("embed")))
        if self.embedder.image_size != self.align.image_size:
            raise ModelError(f"FaceNet IR takes {self.embedder.image_size} px crops but the model was "
                             f"aligned at {self.align.image_size} px")
        self.classifier = LinearSVM.load(self.folder / "classifier")
        with np.load(self.folder / "classifier" / "gallery.npz", allow_pickle=False) as gallery:
            self.gallery = gallery["embeddings"].astype(np.float32)
            self.gallery_labels = gallery["labels"].astype(np.int64)
        rejection = self.info.get("rejection") or {}
        self.max_distance = _threshold(rejection, "max_distance", 0.0, 2.0, self.folder)
        self.min_probability = _threshold(rejection, "min_probability", 0.0, 1.0, self.folder)

    @classmethod
    def from_uri(cls, uri: str, s3_endpoint: str | None = None) -> "Recognizer":
        """Resolve a model URI or folder (checksums verified) and load it."""
        return cls(resolve_model(uri, s3_endpoint))

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.info.get("name", "model"))

    @property
    def version(self) -> str:
        return self.manifest.get("version", "")

    def classify(self, faces: list[Face], crops: np.ndarray) -> None:
        """Embed all crops in one batch and fill in label, probability, nearest and distance."""
        if not faces:
            return
        embeddings = self.embedder.embed(crops)
        names, probabilities = self.classifier.predict(embeddings)
        distances = np.linalg.norm(embeddings[:, None, :] - self.gallery[None, :, :], axis=2)
        for face, embedding, name, probability, row in zip(faces, embeddings, names, probabilities, distances):
            face.embedding = embedding
            face.probability = float(probability)
            nearest = int(np.argmin(row))
            face.nearest = self.classifier.classes[self.gallery_labels[nearest]]
            face.distance = float(row[nearest])
            rejected = (self.max_distance is not None and face.distance > self.max_distance) or (
                self.min_probability is not None and face.probability < self.min_probability)
            face.label = None if rejected else name

    def recognize(self, image: np.ndarray, min_face_size: int | None = None) -> Recognition:
        """Detect, embed and classify every face of an RGB uint8 image."""
        timings = {}
        start = time.perf_counter()
        faces = self.detector.detect(image, min_face_size=min_face_size)
        timings["detect"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        size = self.align.image_size
        crops = np.asarray([crop_face(image, f, self.align) for f in faces], np.uint8).reshape(-1, size, size, 3)
        self.classify(faces, crops)
        timings["embed_classify"] = (time.perf_counter() - start) * 1000
        return Recognition(faces=faces, width=image.shape[1], height=image.shape[0], timings_ms=timings)


def _threshold(rejection: dict, key: str, low: float, high: float, folder: Path) -> float | None:
    """Read one rejection threshold of model.json; None when the model has none."""
    value = rejection.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ModelError(f"{folder / MODEL_FILE}: rejection {key} must be a number in [{low}, {high}]; got {value!r}")
    return float(value)
