"""FaceNet embeddings on the OpenVINO runtime, computed in batches."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kubeface import runtime
from kubeface.convert import EMBEDDING_SIZE
from kubeface.errors import ModelError

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16


def prewhiten_fixed(crops: np.ndarray) -> np.ndarray:
    """Apply the fixed standardisation FaceNet 20180408-102900 was trained with: (x - 127.5) / 128."""
    return (crops.astype(np.float32) - 127.5) * (1.0 / 128.0)


class Embedder:
    """Map N x S x S x 3 RGB uint8 face crops to N x 512 L2-normalised embeddings."""

    def __init__(self, ir_dir: Path, batch_size: int = DEFAULT_BATCH_SIZE, inference_precision: str = "f32"):
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
        """Return N x 512 float32 embeddings; progress(n) is called after each batch."""
        if len(crops) == 0:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        if crops.shape[1:] != (self.image_size, self.image_size, 3):
            raise ModelError(
                f"crops must be N x {self.image_size} x {self.image_size} x 3; got {crops.shape}; "
                "align with the image size the model was converted for"
            )
        out = np.empty((len(crops), EMBEDDING_SIZE), np.float32)
        for start in range(0, len(crops), self.batch_size):
            batch = prewhiten_fixed(crops[start : start + self.batch_size])
            result = self._request.infer([batch])
            out[start : start + len(batch)] = result[self.model.outputs[0]]
            if progress:
                progress(len(batch))
        return out
