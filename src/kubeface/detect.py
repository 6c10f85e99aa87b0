"""MTCNN face detection (PNet, RNet, ONet) on the OpenVINO runtime.

The cascade follows Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks" (2016): an image pyramid scanned by PNet, then RNet and ONet refine the
candidates, each stage followed by box regression and non-maximum suppression (NMS). The
networks expect RGB scaled by (x - 127.5) / 128 and take images with height and width swapped.

Each step reproduces the arithmetic of the `mtcnn` 1.0.0 package (TensorFlow), whose networks
carry the same weights: its pyramid levels, TensorFlow's area resize and crop_and_resize, its
PNet window geometry, its NMS and its tie order. On the photos in the tests both find the same
faces with boxes within a thousandth of a pixel.
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
# First pyramid scale for the default 20-pixel minimum face, which mtcnn's level count assumes.
REFERENCE_FIRST_SCALE = PNET_CELL / 20


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


def pyramid_scales(height: int, width: int, min_face_size: int, scale_factor: float) -> np.ndarray:
    """Return the scales of the image pyramid, largest first.

    The first scale maps min_face_size onto PNet's 12-pixel window. The level count is that of
    mtcnn 1.0.0, round(log(shorter side / 12) / log(1 / scale_factor) - 1), which assumes a
    20-pixel minimum face. For other minimum face sizes the count is shifted by
    log(first scale / 0.6) levels, so the smallest level keeps a shorter side of 12 to 17
    pixels at the default scale factor. Levels whose shorter side would be below 12 pixels are
    dropped.
    """
    first = PNET_CELL / min_face_size
    shorter = min(height, width)
    levels = np.log(shorter / PNET_CELL) + np.log(first / REFERENCE_FIRST_SCALE)
    count = max(0, int(round(-(levels / np.log(scale_factor) + 1))))
    scales = first * scale_factor ** np.arange(count)
    return scales[(shorter * scales).astype(np.int64) >= PNET_CELL]


def _area_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return out_size x K source indices and float32 weights of an area (box filter) resize.

    Output pixel x covers the source interval [x * s, (x + 1) * s) with s = in_size / out_size,
    and each source pixel weighs the length of its overlap with it. The arithmetic is float32,
    as in TensorFlow's ResizeArea kernel, which mtcnn 1.0.0 resizes its pyramid with. Unused
    taps have weight 0.
    """
    step = np.float32(in_size) / np.float32(out_size)
    begin = np.arange(out_size, dtype=np.float32) * step
    end = np.arange(1, out_size + 1, dtype=np.float32) * step
    first = np.floor(begin).astype(np.int64)
    stop = np.ceil(end).astype(np.int64)
    width = int((stop - first).max())
    index = first[:, None] + np.arange(width)[None, :]
    low = index.astype(np.float32)
    high = (index + 1).astype(np.float32)
    begin, end = begin[:, None], end[:, None]
    # These are the branches of TensorFlow's kernel. A source pixel that covers the whole
    # output interval weighs exactly the step, which can differ from end - begin in the last bit.
    weight = np.where(
        low < begin,
        np.where(high > end, step, high - begin),
        np.where(high > end, end - low, np.float32(1)),
    )
    weight = np.where(index < stop[:, None], weight, np.float32(0)).astype(np.float32)
    return np.clip(index, 0, in_size - 1), weight


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Downscale an H x W x C float32 image by averaging over each output pixel's area.

    Matches TensorFlow's tf.image.resize(method="area") bit for bit on the photos tested: each
    row is summed over its horizontal taps first, then the rows over the vertical taps, in the
    kernel's order and in float32, then scaled by the inverse area of one output pixel.
    """
    return _resize_area_transposed(np.ascontiguousarray(image.transpose(1, 0, 2)), height, width)


def _resize_area_transposed(image_t: np.ndarray, height: int, width: int) -> np.ndarray:
    """resize_area of a W x H x C image; gathering rows of it is faster than gathering columns."""
    in_width, in_height = image_t.shape[:2]
    rows, row_weights = _area_taps(in_height, height)
    cols, col_weights = _area_taps(in_width, width)
    area = np.float32(1.0 / float(np.float32(in_height) / np.float32(height)
                                  * (np.float32(in_width) / np.float32(width))))
    horizontal = image_t[cols[:, 0]] * col_weights[:, 0, None, None]
    for tap in range(1, cols.shape[1]):
        term = image_t[cols[:, tap]]
        term *= col_weights[:, tap, None, None]
        horizontal += term
    horizontal = np.ascontiguousarray(horizontal.transpose(1, 0, 2))
    out = horizontal[rows[:, 0]] * row_weights[:, 0, None, None]
    for tap in range(1, rows.shape[1]):
        term = horizontal[rows[:, tap]]
        term *= row_weights[:, tap, None, None]
        out += term
    out *= area
    return out


def sort_by_score(boxes: np.ndarray) -> np.ndarray:
    """Return the rows of N x 5 [x1, y1, x2, y2, score] boxes by decreasing score.

    The order of equal scores is that of np.argsort reversed, as in mtcnn 1.0.0; the scores
    are float64 so that ties between scores of 1.0 are broken the same way.
    """
    return boxes[np.argsort(boxes[:, 4].astype(np.float64))[::-1]]


def nms(boxes: np.ndarray, threshold: float, method: str = "union", block: int = 128) -> np.ndarray:
    """Return the indices of the boxes that no earlier box overlaps by more than threshold.

    boxes: N x 4 [x1, y1, x2, y2], ordered by decreasing priority. Unlike greedy NMS, a box is
    removed by any earlier box, even one that was itself removed, as in mtcnn 1.0.0.
    method "union" divides the intersection by the union (IoU), "min" by the smaller area.
    Areas are (x2 - x1) * (y2 - y1). Pairs are compared in blocks of columns to bound memory.
    """
    if method not in ("union", "min"):
        raise ValueError(f"NMS method must be 'union' or 'min'; got {method!r}")
    boxes = np.asarray(boxes, dtype=np.float64)
    count = len(boxes)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep = np.ones(count, dtype=bool)
    for start in range(0, count, block):
        stop = min(count, start + block)
        later = slice(start, stop)
        inter_w = np.maximum(0.0, np.minimum(x2[:stop, None], x2[None, later])
                             - np.maximum(x1[:stop, None], x1[None, later]))
        inter_h = np.maximum(0.0, np.minimum(y2[:stop, None], y2[None, later])
                             - np.maximum(y1[:stop, None], y1[None, later]))
        inter = inter_w * inter_h
        if method == "min":
            denominator = np.minimum(areas[:stop, None], areas[None, later])
        else:
            denominator = areas[:stop, None] + areas[None, later] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = inter / denominator
        earlier = np.arange(stop)[:, None] < np.arange(start, stop)[None, :]
        keep[later] = ~((overlap > threshold) & earlier).any(axis=0)
    return np.flatnonzero(keep)


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


def _sample_positions(low: np.ndarray, high: np.ndarray, size: int, side: int) -> np.ndarray:
    """Return N x side float32 sample positions spanning [low, high] pixels of an axis of size pixels.

    The arithmetic is that of TensorFlow's crop_and_resize: corners are divided by the image
    size in float64, rounded to float32, and scaled by size - 1.
    """
    low = (low / size).astype(np.float32)[:, None]
    high = (high / size).astype(np.float32)[:, None]
    last = np.float32(size - 1)
    step = (high - low) * last / np.float32(side - 1)
    return low * last + np.arange(side, dtype=np.float32)[None, :] * step


def _crop_patches(image: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Sample each box from the normalised image bilinearly onto a side x side grid.

    Samples outside the image are 0, the mean colour after normalisation, as with
    crop_and_resize's extrapolation value. Returns N x side x side x 3 float32 with height and
    width swapped for the nets.
    """
    height, width = image.shape[:2]
    ys = _sample_positions(boxes[:, 1], boxes[:, 3], height, side)
    xs = _sample_positions(boxes[:, 0], boxes[:, 2], width, side)
    y_inside = (ys >= 0) & (ys <= height - 1)
    x_inside = (xs >= 0) & (xs <= width - 1)
    y_top = np.clip(np.floor(ys), 0, height - 1).astype(np.int64)
    x_left = np.clip(np.floor(xs), 0, width - 1).astype(np.int64)
    y_bottom = np.clip(np.ceil(ys), 0, height - 1).astype(np.int64)
    x_right = np.clip(np.ceil(xs), 0, width - 1).astype(np.int64)
    wy = (ys - np.floor(ys))[:, :, None, None]
    wx = (xs - np.floor(xs))[:, None, :, None]
    rows_top, rows_bottom = y_top[:, :, None], y_bottom[:, :, None]
    cols_left, cols_right = x_left[:, None, :], x_right[:, None, :]
    top_left, top_right = image[rows_top, cols_left], image[rows_top, cols_right]
    bottom_left, bottom_right = image[rows_bottom, cols_left], image[rows_bottom, cols_right]
    top = top_left + (top_right - top_left) * wx
    bottom = bottom_left + (bottom_right - bottom_left) * wx
    patches = top + (bottom - top) * wy
    inside = (y_inside[:, :, None] & x_inside[:, None, :])[..., None]
    patches = np.where(inside, patches, np.float32(0)).astype(np.float32)
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

    def _stage_pnet(self, normalized: np.ndarray, min_face: int) -> np.ndarray:
        """Scan the pyramid with PNet; returns N x 5 square boxes [x1, y1, x2, y2, score]."""
        height, width = normalized.shape[:2]
        normalized_t = np.ascontiguousarray(normalized.transpose(1, 0, 2))
        candidates = []
        for scale in pyramid_scales(height, width, min_face, self.settings.scale_factor):
            # Sizes are truncated as TensorFlow truncates mtcnn's float sizes.
            scaled = _resize_area_transposed(normalized_t, int(height * scale), int(width * scale))
            found = self._pnet_candidates(scaled, scale)
            if len(found):
                candidates.append(found[nms(found[:, :4], 0.5, "union")])
        if not candidates:
            return np.zeros((0, 5), np.float64)
        boxes = sort_by_score(np.concatenate(candidates))
        boxes = boxes[nms(boxes[:, :4], 0.7, "union")]
        boxes[:, :4] = _square(boxes[:, :4])
        return boxes

    def _pnet_candidates(self, scaled: np.ndarray, scale: float) -> np.ndarray:
        """Run PNet on one pyramid level; returns its N x 5 boxes above threshold, best first."""
        outputs = self._pnet_request.infer([scaled.transpose(1, 0, 2)[np.newaxis]])
        # Outputs are N x W' x H' x C; swap back to H' x W'.
        offsets = outputs[self.pnet.outputs[0]][0].transpose(1, 0, 2).astype(np.float64)
        probs = outputs[self.pnet.outputs[1]][0].transpose(1, 0, 2)[:, :, 1]
        rows, cols = np.nonzero(probs > self.settings.thresholds[0])
        # Output cell (row, col) is the window from (2 col + 1, 2 row + 1) to
        # (2 col + 12, 2 row + 12) of the level, as in mtcnn 1.0.0. The offsets move its
        # corners by fractions of that 11-pixel span, then the box is scaled back.
        corners = np.column_stack([cols, rows, cols, rows]) * PNET_STRIDE
        corners += np.array([1, 1, PNET_CELL, PNET_CELL])
        boxes = (corners + offsets[rows, cols] * (PNET_CELL - 1)) / scale
        return sort_by_score(np.column_stack([boxes, probs[rows, cols]]))

    def _stage_rnet(self, normalized: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Refine PNet's candidates with RNet; returns N x 5 square boxes."""
        outputs = self.rnet(_crop_patches(normalized, boxes[:, :4], 24))
        offsets = outputs[self.rnet.outputs[0]]
        scores = outputs[self.rnet.outputs[1]][:, 1]
        boxes = np.column_stack([_regress(boxes[:, :4], offsets), scores])
        boxes = sort_by_score(boxes[scores > self.settings.thresholds[1]])
        boxes = boxes[nms(boxes[:, :4], 0.7, "union")]
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
        order = np.argsort(boxes[:, 4].astype(np.float64))[::-1]
        boxes, landmarks = boxes[order], landmarks[order]
        keep = nms(boxes[:, :4], 0.7, "min")
        return boxes[keep], landmarks[keep]
