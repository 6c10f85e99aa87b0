"""FaceNet embeddings on the OpenVINO runtime, computed in batches."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from kubeface import runtime
from kubeface.convert import EMBEDDING_SIZE
from kubeface.errors import InvalidInputError, ModelError

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16
STANDARDIZATIONS = ("fixed", "per_image")


@dataclasses.dataclass(frozen=True)
class EmbedSettings:
    """Settings that turn face crops into FaceNet input and combine the embeddings of their views."""

    standardization: str = "fixed"
    """"fixed": (x - 127.5) / 128, the scaling FaceNet 20180408-102900 was trained with;
    "per_image": each crop minus its own mean, divided by its own standard deviation."""
    add_mirrored: bool = False
    """Add the embedding of the horizontally mirrored crop to the crop's own, then L2-normalise
    the sum; this runs the network twice per face."""

    def __post_init__(self):
        if self.standardization not in STANDARDIZATIONS:
            raise InvalidInputError(
                f"standardization must be one of {STANDARDIZATIONS}; got {self.standardization!r}"
            )

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict | None) -> "EmbedSettings":
        """Read settings saved by to_json; a missing key means the value used before it existed."""
        data = data or {}
        return cls(standardization=data.get("standardization", "fixed"),
                   add_mirrored=bool(data.get("add_mirrored", False)))


def prewhiten_fixed(crops: np.ndarray) -> np.ndarray:
    """Apply the fixed standardisation FaceNet 20180408-102900 was trained with: (x - 127.5) / 128."""
    return (crops.astype(np.float32) - 127.5) * (1.0 / 128.0)


def prewhiten_per_image(crops: np.ndarray) -> np.ndarray:
    """Scale each crop to zero mean and unit standard deviation.

    The standard deviation is floored at 1 / sqrt(pixels x channels) so a flat crop does not
    divide by zero.
    """
    values = crops.astype(np.float32)
    axes = tuple(range(1, values.ndim))
    mean = values.mean(axis=axes, keepdims=True)
    std = values.std(axis=axes, keepdims=True)
    floor = 1.0 / np.sqrt(np.prod(values.shape[1:]))
    return (values - mean) / np.maximum(std, floor)


def standardize(crops: np.ndarray, standardization: str) -> np.ndarray:
    """Turn N x S x S x 3 uint8 crops into float32 network input with the named standardization."""
    if standardization == "fixed":
        return prewhiten_fixed(crops)
    if standardization == "per_image":
        return prewhiten_per_image(crops)
    raise InvalidInputError(f"standardization must be one of {STANDARDIZATIONS}; got {standardization!r}")


def mirror(crops: np.ndarray) -> np.ndarray:
    """Flip N x H x W x C crops left to right."""
    return np.ascontiguousarray(crops[:, :, ::-1])


def combine_mirrored(embeddings: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Sum the embeddings of the crops and of their mirror images and L2-normalise each row."""
    total = embeddings.astype(np.float32) + mirrored.astype(np.float32)
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    return total / np.maximum(norms, 1e-12)


class Embedder:
    """Map N x S x S x 3 RGB uint8 face crops to N x 512 L2-normalised embeddings."""

    def __init__(self, ir_dir: Path, batch_size: int = DEFAULT_BATCH_SIZE, inference_precision: str = "f32",
                 settings: EmbedSettings | None = None):
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be at least 1; got {batch_size}")
        self.settings = settings or EmbedSettings()
        self.model = runtime.compile_ir(ir_dir / "facenet.xml", inference_precision)
        shape = self.model.inputs[0].get_partial_shape()
        out_shape = self.model.outputs[0].get_partial_shape()
        if shape.rank.get_length() != 4 or not shape[0].is_dynamic or str(out_shape[1]) != str(EMBEDDING_SIZE):
            raise ModelError(
                f"FaceNet IR {ir_dir / 'facenet.xml'} must take [?, S, S, 3] and give [?, "
                f"{EMBEDDING_SIZE}]; got input {shape} and output {out_shape}; run convert again"
            )
        self.image_size = shape[1].get_length()
        self.batch_size = batch_size
        self.precision = self.model.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._request = self.model.create_infer_request()

    def embed(self, crops: np.ndarray, progress=None) -> np.ndarray:
        """Return N x 512 float32 embeddings; progress(n) is called after each batch of n crops."""
        if len(crops) == 0:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        if crops.shape[1:] != (self.image_size, self.image_size, 3):
            raise ModelError(
                f"crops must be N x {self.image_size} x {self.image_size} x 3; got {crops.shape}; "
                "align with the image size the model was converted for"
            )
        out = np.empty((len(crops), EMBEDDING_SIZE), np.float32)
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start : start + self.batch_size]
            embeddings = self._infer(batch)
            if self.settings.add_mirrored:
                embeddings = combine_mirrored(embeddings, self._infer(mirror(batch)))
            out[start : start + len(batch)] = embeddings
            if progress:
                progress(len(batch))
        return out

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        result = self._request.infer([standardize(batch, self.settings.standardization)])
        return np.array(result[self.model.outputs[0]], np.float32)
