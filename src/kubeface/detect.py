"""MTCNN face detection (PNet, RNet, ONet) on the OpenVINO runtime.

The cascade follows Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks" (2016): an image pyramid scanned by PNet, then RNet and ONet refine the
candidates, each stage followed by box regression and non-maximum suppression (NMS). The
networks expect RGB scaled by (x - 127.5) / 128 and take images with height and width swapped.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import cv2
import numpy as np

from kubeface import runtime
from kubeface.errors import InvalidInputError
from kubeface.faces import Face

logger = logging.getLogger(__name__)

PNET_CELL = 12
PNET_STRIDE = 2


@dataclasses.dataclass(frozen=True)
class DetectorSettings:
    """MTCNN parameters; the defaults are those of the original MTCNN release."""

    min_face_size: int = 20
    """Smallest face to find, in pixels of the image that is searched."""
    scale_factor: float = 0.709
    """Ratio between consecutive pyramid levels."""
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    """Minimum face probability for PNet, RNet and ONet."""
    max_detect_side: int = 2000
    """Images whose longer side exceeds this are downscaled for detection; boxes are mapped back."""

    def __post_init__(self):
        if self.min_face_size < PNET_CELL:
            raise InvalidInputError(
                f"min_face_size must be at least {PNET_CELL} pixels; got {self.min_face_size}"
            )
        if not 0.1 <= self.scale_factor < 1.0:
            raise InvalidInputError(f"scale_factor must be in [0.1, 1); got {self.scale_factor}")
        for value in self.thresholds:
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"detection thresholds must be in [0, 1]; got {self.thresholds}")
        if self.max_detect_side < 64:
            raise InvalidInputError(f"max_detect_side must be at least 64; got {self.max_detect_side}")


def _normalize(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) - 127.5) * (1.0 / 128.0)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Return the indices kept by greedy NMS, highest score first.

    boxes: N x 4 [x1, y1, x2, y2] in inclusive pixel coordinates. method "union" divides the
    overlap by the union (IoU), "min" by the smaller box.
    """
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")
    keep = []
    while order.size > 0:
        best = order[-1]
        keep.append(best)
        rest = order[:-1]
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = width * height
        if method == "min":
            overlap = inter / np.minimum(areas[best], areas[rest])
        else:
            overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre."""
    out = boxes.copy()
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    out[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply the refinement offsets (fractions of the box size) of RNet and ONet."""
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] + offsets[:, 0] * width
    out[:, 1] = boxes[:, 1] + offsets[:, 1] * height
    out[:, 2] = boxes[:, 2] + offsets[:, 2] * width
    out[:, 3] = boxes[:, 3] + offsets[:, 3] * height
    return out


def _crop_patches(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Sample each box from the normalised image bilinearly onto a side x side grid.

    The grid spans the box corners as in TensorFlow's crop_and_resize (box corners divided by
    the image size, then scaled by size - 1); samples outside the image are 0, the mean
    colour after normalisation. Returns N x side x side x 3 float32 with height and width
    swapped for the nets.
    """
    height, width = image.shape[:2]
    steps = np.arange(side, dtype=np.float64) / (side - 1)
    y1 = boxes[:, 1:2] / height * (height - 1)
    y2 = boxes[:, 3:4] / height * (height - 1)
    x1 = boxes[:, 0:1] / width * (width - 1)
    x2 = boxes[:, 2:3] / width * (width - 1)
    ys = y1 + steps[None, :] * (y2 - y1)  # N x side
    xs = x1 + steps[None, :] * (x2 - x1)
    y_inside = (ys >= 0) & (ys <= height - 1)
    x_inside = (xs >= 0) & (xs <= width - 1)
    y_top = np.clip(np.floor(ys), 0, height - 1).astype(np.int64)
    x_left = np.clip(np.floor(xs), 0, width - 1).astype(np.int64)
    y_bottom = np.minimum(y_top + 1, height - 1)
    x_right = np.minimum(x_left + 1, width - 1)
    wy = (ys - np.floor(ys))[:, :, None, None]
    wx = (xs - np.floor(xs))[:, None, :, None]
    rows_top, rows_bottom = y_top[:, :, None], y_bottom[:, :, None]
    cols_left, cols_right = x_left[:, None, :], x_right[:, None, :]
    top = image[rows_top, cols_left] * (1 - wx) + image[rows_top, cols_right] * wx
    bottom = image[rows_bottom, cols_left] * (1 - wx) + image[rows_bottom, cols_right] * wx
    patches = top * (1 - wy) + bottom * wy
    inside = (y_inside[:, :, None] & x_inside[:, None, :])[..., None]
    patches = np.where(inside, patches, 0.0).astype(np.float32)
    return patches.transpose(0, 2, 1, 3)


class Detector:
    """MTCNN on three compiled OpenVINO networks; any image size without recompiling."""

    def __init__(self, ir_dir: Path, settings: DetectorSettings | None = None):
        self.settings = settings or DetectorSettings()
        self.pnet = runtime.compile_ir(ir_dir / "pnet.xml")
        self.rnet = runtime.compile_ir(ir_dir / "rnet.xml")
        self.onet = runtime.compile_ir(ir_dir / "onet.xml")
        self._pnet_request = self.pnet.create_infer_request()

    def detect(self, image: np.ndarray, min_face_size: int | None = None) -> list[Face]:
        """Find every face in an RGB uint8 H x W x 3 image, highest score first.

        Boxes are [x1, y1, x2, y2] in pixels of this image, clipped to [0, W - 1] x [0, H - 1].
        Images with a side over max_detect_side are searched downscaled and their boxes mapped back.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InvalidInputError(
                f"expected an RGB uint8 image of shape H x W x 3; got {image.dtype} {image.shape}"
            )
        min_face = min_face_size or self.settings.min_face_size
        if min_face < PNET_CELL:
            raise InvalidInputError(f"min_face_size must be at least {PNET_CELL}; got {min_face}")
        original_shape = image.shape
        scale = 1.0
        longest = max(image.shape[:2])
        if longest > self.settings.max_detect_side:
            scale = self.settings.max_detect_side / longest
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            min_face = max(PNET_CELL, int(min_face * scale))
        boxes, landmarks = self._cascade(image, min_face)
        # Boxes of faces cut by the border reach outside the image; clip them to its pixels.
        height, width = original_shape[:2]
        faces = []
        for box, points in zip(boxes, landmarks):
            clipped = np.clip(box[:4] / scale, 0, [width - 1, height - 1, width - 1, height - 1])
            faces.append(Face(box=clipped, score=float(box[4]), landmarks=points / scale))
        return faces

    def _cascade(self, image: np.ndarray, min_face: int) -> tuple[np.ndarray, np.ndarray]:
        empty = (np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))
        normalized = _normalize(image)
        boxes = self._stage_pnet(normalized, min_face)
        if len(boxes) == 0:
            return empty
        boxes = self._stage_rnet(normalized, boxes)
        if len(boxes) == 0:
            return empty
        return self._stage_onet(normalized, boxes)

    def _pyramid(self, height: int, width: int, min_face: int) -> list[float]:
        scale = PNET_CELL / min_face
        shortest = min(height, width) * scale
        scales = []
        while shortest >= PNET_CELL:
            scales.append(scale)
            scale *= self.settings.scale_factor
            shortest *= self.settings.scale_factor
        return scales

    def _stage_pnet(self, normalized: np.ndarray, min_face: int) -> np.ndarray:
        """Scan the pyramid with PNet; returns N x 5 square boxes [x1, y1, x2, y2, score]."""
        height, width = normalized.shape[:2]
        threshold = self.settings.thresholds[0]
        candidates = []
        for scale in self._pyramid(height, width, min_face):
            scaled_h, scaled_w = int(height * scale), int(width * scale)
            # Resizing the float image, not the uint8 one, avoids a rounding step that moves
            # PNet's weaker scores by several hundredths.
            scaled = cv2.resize(normalized, (scaled_w, scaled_h), interpolation=cv2.INTER_AREA)
            batch = scaled.transpose(1, 0, 2)[np.newaxis]
            outputs = self._pnet_request.infer([batch])
            # Outputs are N x W' x H' x C; swap back to H' x W'.
            offsets = outputs[self.pnet.outputs[0]][0].transpose(1, 0, 2)
            probs = outputs[self.pnet.outputs[1]][0].transpose(1, 0, 2)[:, :, 1]
            rows, cols = np.nonzero(probs > threshold)
            if rows.size == 0:
                continue
            # Each output cell sees a 12 x 12 window at stride 2 of the scaled image; the
            # offsets move its corners by fractions of 12, then the box is scaled back.
            cell = np.column_stack([cols, rows, cols, rows]) * PNET_STRIDE + np.array([0, 0, PNET_CELL, PNET_CELL])
            found = np.column_stack([(cell + offsets[rows, cols] * PNET_CELL) / scale, probs[rows, cols]])
            candidates.append(found[nms(found[:, :4], found[:, 4], 0.5, "union")])
        if not candidates:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(candidates)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7, "union")]
        boxes[:, :4] = _square(boxes[:, :4])
        return boxes

    def _stage_rnet(self, normalized: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Refine PNet's candidates with RNet; returns N x 5 square boxes."""
        outputs = self.rnet(_crop_patches(normalized, boxes[:, :4], 24))
        offsets = outputs[self.rnet.outputs[0]]
        scores = outputs[self.rnet.outputs[1]][:, 1]
        boxes = np.column_stack([_regress(boxes[:, :4], offsets), scores])
        boxes = boxes[scores > self.settings.thresholds[1]]
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7, "union")]
        boxes[:, :4] = _square(boxes[:, :4])
        return boxes

    def _stage_onet(self, normalized: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score, refine and place landmarks with ONet; returns N x 5 boxes and N x 5 x 2 points."""
        outputs = self.onet(_crop_patches(normalized, boxes[:, :4], 48))
        offsets = outputs[self.onet.outputs[0]]
        points = outputs[self.onet.outputs[1]]
        scores = outputs[self.onet.outputs[2]][:, 1]
        width = boxes[:, 2] - boxes[:, 0] + 1
        height = boxes[:, 3] - boxes[:, 1] + 1
        # ONet gives the five x positions, then the five y positions, as fractions of the box.
        xs = boxes[:, 0:1] + points[:, 0:5] * width[:, None] - 1
        ys = boxes[:, 1:2] + points[:, 5:10] * height[:, None] - 1
        landmarks = np.stack([xs, ys], axis=2)
        boxes = np.column_stack([_regress(boxes[:, :4], offsets), scores])
        passed = scores > self.settings.thresholds[2]
        boxes, landmarks = boxes[passed], landmarks[passed]
        keep = nms(boxes[:, :4], boxes[:, 4], 0.7, "min")
        return boxes[keep], landmarks[keep]
