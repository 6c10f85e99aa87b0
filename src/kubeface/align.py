"""Choose the face of a training photo and cut it out as the network's square input.

There are two alignment methods. "box", the default, crops the detected box plus a margin and
stretches it to a square, as FaceNet's own dataset alignment does. "similarity" maps the five
detected landmarks onto a template with a least-squares similarity transform, so a tilted head
is levelled and every face gets the same framing whatever its size. On LFW's View 1 pairs,
"box" with a 24 px margin scored highest of the margins and methods tried (BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from kubeface.errors import InvalidInputError
from kubeface.faces import Face

ALIGN_METHODS = ("box", "similarity")


@dataclasses.dataclass(frozen=True)
class AlignSettings:
    """Settings that turn a detected face into the network's square input crop."""

    margin: int = 24
    """Pixels added around the detected box in total (half on each side), before resizing.
    The similarity method frames every face as a box crop frames a face of TYPICAL_BOX_SIZE.
    By our estimate, 24 px frames a face of LFW's size about as FaceNet 20180408-102900 saw
    faces in training (box plus 44 px at 182 px, then the central 160 px)."""
    image_size: int = 160
    """Side of the square crop fed to FaceNet, in pixels."""
    method: str = "box"
    """"box": the box plus margin stretched to a square; "similarity": the five landmarks mapped
    onto the layout that box crops have on average (FIVE_POINT_LAYOUT)."""

    def __post_init__(self):
        if self.method not in ALIGN_METHODS:
            raise InvalidInputError(f"align method must be one of {ALIGN_METHODS}; got {self.method!r}")
        if self.margin < 0:
            raise InvalidInputError(f"margin must be >= 0 pixels; got {self.margin}")
        if not 32 <= self.image_size <= 1024:
            raise InvalidInputError(f"image_size must be in [32, 1024] pixels; got {self.image_size}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "AlignSettings":
        """Read settings saved by to_json; a missing method means "box", the only one before it existed."""
        return cls(margin=int(data["margin"]), image_size=int(data["image_size"]),
                   method=data.get("method", "box"))


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
    """Cut the face out of an RGB image as an image_size x image_size crop, by settings.method."""
    if settings.method == "similarity":
        return similarity_crop(image, face, settings)
    return box_crop(image, face, settings)


def box_crop(image: np.ndarray, face: Face, settings: AlignSettings) -> np.ndarray:
    """Cut the face box with its margin out of an RGB image and resize it to image_size squared.

    The crop is clipped to the image, so a face touching the border still gives a non-empty
    crop. It is stretched to a square as in FaceNet's own alignment.
    """
    x1, y1, x2, y2 = crop_box(face, image.shape, settings.margin)
    crop = image[y1:y2, x1:x2]
    size = settings.image_size
    interpolation = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


# The five landmarks (left eye, right eye, nose, mouth left, mouth right) as fractions of the
# MTCNN box width and height, and the box's mean width and height in pixels. Both are means
# over the 4,991 photos of LFW's View 1 development pairs (deep-funneled, 250 x 250), with the
# faces found by kubeface's detector (default DetectorSettings) and choose_face.
FIVE_POINT_LAYOUT = np.array([
    [0.2816, 0.3855],
    [0.7367, 0.3774],
    [0.5132, 0.5792],
    [0.3150, 0.7548],
    [0.7209, 0.7478],
])
TYPICAL_BOX_SIZE = (91.5, 123.5)
# The face box assumed for a photo without a detected face, as fractions (x1, y1, x2, y2) of
# the image width and height: the median box of the same photos.
CENTRE_BOX = (0.315, 0.259, 0.678, 0.750)


def template_points(settings: AlignSettings) -> np.ndarray:
    """Return where the five landmarks of a typical face land in a box crop: 5 x [x, y] pixels."""
    width, height = TYPICAL_BOX_SIZE
    margin, size = settings.margin, settings.image_size
    x = (FIVE_POINT_LAYOUT[:, 0] * width + margin / 2) / (width + margin) * size
    y = (FIVE_POINT_LAYOUT[:, 1] * height + margin / 2) / (height + margin) * size
    return np.column_stack([x, y])


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Return the 2 x 3 similarity (rotation, uniform scale, shift) that best maps source onto target.

    Least squares over the point pairs, without reflection (Umeyama, "Least-squares estimation
    of transformation parameters between two point patterns", IEEE TPAMI 1991).
    """
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = (source_centred**2).sum() / len(source)
    if variance == 0:
        raise InvalidInputError("cannot align a face whose five landmarks are all at one point")
    scale = float((singular * sign).sum() / variance)
    shift = target_mean - scale * rotation @ source_mean
    return np.column_stack([scale * rotation, shift])


def similarity_crop(image: np.ndarray, face: Face, settings: AlignSettings) -> np.ndarray:
    """Warp the face so its five landmarks fit the template of a box crop of the same settings.

    A box crop stretches the face more across than down, because MTCNN boxes are taller than
    wide. So the similarity is fitted in unstretched coordinates and the typical stretch is
    applied after it, which gives the network faces with the proportions it was trained on.
    Pixels outside the image are black.
    """
    width, height = TYPICAL_BOX_SIZE
    stretch = (height + settings.margin) / (width + settings.margin)
    target = template_points(settings) / [stretch, 1.0]
    matrix = np.diag([stretch, 1.0]) @ similarity_transform(face.landmarks, target)
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < 0.75:
        # Shrink first with area averaging, so a large face is not sampled with aliasing.
        factor = scale / 0.75 if scale > 0 else 1.0
        small = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
        image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        matrix = matrix @ np.diag([1 / factor, 1 / factor, 1.0])
    size = settings.image_size
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def centre_face(image_shape: tuple[int, ...]) -> Face:
    """Return a stand-in face for a photo without a detected face: the centre box of CENTRE_BOX.

    Its landmarks follow FIVE_POINT_LAYOUT, so either alignment method can crop it. The score
    is 0, marking that nothing was detected.
    """
    height, width = image_shape[:2]
    box = np.array(CENTRE_BOX) * [width, height, width, height]
    landmarks = box[:2] + FIVE_POINT_LAYOUT * [box[2] - box[0], box[3] - box[1]]
    return Face(box=box, score=0.0, landmarks=landmarks)
