"""Choose the face of a training photo and crop it with a margin to a square input."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from kubeface.errors import InvalidInputError
from kubeface.faces import Face


@dataclasses.dataclass(frozen=True)
class AlignSettings:
    """How a face box becomes the network's input crop."""

    margin: int = 32
    """Pixels added around the detected box in total (half on each side), before resizing."""
    image_size: int = 160
    """Side of the square crop fed to FaceNet, in pixels."""

    def __post_init__(self):
        if self.margin < 0:
            raise InvalidInputError(f"margin must be >= 0 pixels; got {self.margin}")
        if not 32 <= self.image_size <= 1024:
            raise InvalidInputError(f"image_size must be in [32, 1024] pixels; got {self.image_size}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def choose_face(faces: list[Face], image_shape: tuple[int, ...]) -> Face | None:
    """Pick the face a training photo is about: the largest, penalised by distance to the centre.

    The rule is the one of FaceNet's dataset alignment: box area minus twice the squared
    offset of the box centre from the image centre. Returns None when there is no face.
    """
    if not faces:
        return None
    height, width = image_shape[:2]

    def weight(face: Face) -> float:
        centre_x = (face.box[0] + face.box[2]) / 2 - width / 2
        centre_y = (face.box[1] + face.box[3]) / 2 - height / 2
        return face.width * face.height - 2.0 * (centre_x**2 + centre_y**2)

    return max(faces, key=weight)


def crop_box(face: Face, image_shape: tuple[int, ...], margin: int) -> tuple[int, int, int, int]:
    """Return the integer crop [x1, y1, x2, y2) of a face box plus margin, clipped to the image."""
    height, width = image_shape[:2]
    x1 = int(np.clip(np.floor(face.box[0] - margin / 2), 0, width - 1))
    y1 = int(np.clip(np.floor(face.box[1] - margin / 2), 0, height - 1))
    x2 = int(np.clip(np.ceil(face.box[2] + margin / 2), x1 + 1, width))
    y2 = int(np.clip(np.ceil(face.box[3] + margin / 2), y1 + 1, height))
    return x1, y1, x2, y2


def crop_face(image: np.ndarray, face: Face, settings: AlignSettings) -> np.ndarray:
    """Cut the face with its margin out of an RGB image and resize it to image_size squared.

    The crop is clipped to the image, so a face touching the border still gives a non-empty
    crop; it is stretched to a square as in FaceNet's own alignment.
    """
    x1, y1, x2, y2 = crop_box(face, image.shape, settings.margin)
    crop = image[y1:y2, x1:x2]
    size = settings.image_size
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)
