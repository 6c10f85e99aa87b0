"""Draw each face's box, landmarks and name on a copy of the photo, and encode it as PNG.

Recognized faces get a green box, with the name and probability on a filled bar under it.
Faces the model rejects as unknown get a red box labelled "unknown".
"""

from __future__ import annotations

import numpy as np

from kubeface.faces import Face
from kubeface.imageio import encode_png

KNOWN_COLOR = (0, 200, 0)
UNKNOWN_COLOR = (220, 0, 0)
TEXT_COLOR = (255, 255, 255)
LANDMARK_COLOR = (255, 255, 0)
UNKNOWN_TEXT = "unknown"


def caption(face: Face) -> str:
    """Return the text drawn under a face: its name and probability, or "unknown"."""
    if face.label is None:
        return UNKNOWN_TEXT
    if face.probability is None:
        return face.label
    return f"{face.label} {face.probability:.2f}"


def box_color(face: Face) -> tuple[int, int, int]:
    return UNKNOWN_COLOR if face.label is None else KNOWN_COLOR


def line_width(image_shape: tuple[int, ...]) -> int:
    """Return the box outline width in pixels: 2 for small photos, thicker for large ones."""
    return max(2, round(min(image_shape[:2]) / 250))


def draw_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Return an RGB uint8 copy of image with every face's box, landmarks and caption drawn.

    The text uses Pillow's bundled scalable font (Aileron), which covers Latin scripts.
    """
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = line_width(image.shape)
    height_px, width_px = image.shape[:2]
    for face in faces:
        color = box_color(face)
        # Whole pixels, rounded: Pillow truncates float corners, which moved the outline by one.
        x1, y1, x2, y2 = (round(float(v)) for v in face.box)
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        radius = width
        for x, y in np.asarray(face.landmarks, dtype=np.float64).reshape(-1, 2):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=LANDMARK_COLOR)
        # NOTE: Aileron has no CJK glyphs, so such names are drawn as boxes; the JSON keeps them exact.
        font = ImageFont.load_default(size=max(11, min(48, round((x2 - x1) / 7))))
        text = caption(face)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        bar_height = bottom - top + 2 * width
        # The bar goes under the box, or inside its bottom edge when the box touches the image bottom.
        bar_top = y2 if y2 + bar_height <= height_px else max(0.0, y2 - bar_height)
        bar_right = min(float(width_px), max(x2, x1 + right - left + 2 * width))
        draw.rectangle([x1, bar_top, bar_right, bar_top + bar_height], fill=color)
        draw.text((x1 + width - left, bar_top + width - top), text, fill=TEXT_COLOR, font=font)
    return np.asarray(canvas, dtype=np.uint8)


def annotated_png(image: np.ndarray, faces: list[Face]) -> bytes:
    """Draw the faces on a copy of image and return it as PNG bytes of the original size."""
    return encode_png(draw_faces(image, faces))
