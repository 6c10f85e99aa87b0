"""The record of one detected face, filled in by detection, embedding and classification."""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class Face:
    """One face in one image.

    box: [x1, y1, x2, y2] in pixels of the original image (after EXIF orientation).
    landmarks: 5 x [x, y] in the same pixels: left eye, right eye, nose, mouth left, mouth right.
    label: the recognized person, or None when the face is rejected as unknown or not classified.
    nearest: the closest known person, kept even when label is None.
    distance: Euclidean distance from the embedding to the nearest person's closest training
    embedding (embeddings are L2-normalised, so it lies in [0, 2]).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    embedding: np.ndarray | None = None
    label: str | None = None
    probability: float | None = None
    nearest: str | None = None
    distance: float | None = None

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    def to_json(self) -> dict:
        """Return a JSON-ready dict; NaN and infinity become None."""
        return {
            "box": [_finite(v) for v in self.box],
            "score": _finite(self.score),
            "landmarks": [[_finite(x), _finite(y)] for x, y in self.landmarks],
            "label": self.label,
            "probability": _finite(self.probability),
            "nearest": self.nearest,
            "distance": _finite(self.distance),
        }


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None
