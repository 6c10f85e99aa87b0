"""Annotated images: boxes in the right colour at the detected place, captions, PNG of the original size."""

from __future__ import annotations

import io

import numpy as np
import pytest

from kubeface.faces import Face
from kubeface.imageio import read_image
from kubeface.serving import annotate


@pytest.fixture(scope="module")
def photo(demo_root):
    return read_image(demo_root / "test" / "Ariel_Sharon" / "Ariel_Sharon_0013.jpg")


@pytest.fixture(scope="module")
def face(detector, photo):
    faces = detector.detect(photo)
    assert len(faces) == 1
    return faces[0]


def labelled(face: Face, label, probability) -> Face:
    return Face(box=face.box.copy(), score=face.score, landmarks=face.landmarks.copy(), label=label,
                probability=probability)


def left_edge_pixel(face: Face, image_shape) -> tuple[int, int]:
    """Return (row, column) of a pixel on the box's left outline, halfway down."""
    width = annotate.line_width(image_shape)
    return int((face.box[1] + face.box[3]) / 2), int(round(float(face.box[0]))) + width // 2


def test_caption_texts():
    box, points = np.array([0.0, 0.0, 10.0, 10.0]), np.zeros((5, 2))
    assert annotate.caption(Face(box, 1.0, points, label="Ariel_Sharon", probability=0.904)) == "Ariel_Sharon 0.90"
    assert annotate.caption(Face(box, 1.0, points, label=None, probability=0.2)) == "unknown"
    assert annotate.caption(Face(box, 1.0, points, label="Laura_Bush")) == "Laura_Bush"


def test_known_face_green_box(photo, face):
    drawn = annotate.draw_faces(photo, [labelled(face, "Ariel_Sharon", 0.93)])
    row, column = left_edge_pixel(face, photo.shape)
    assert drawn.shape == photo.shape
    assert drawn.dtype == np.uint8
    assert tuple(drawn[row, column]) == annotate.KNOWN_COLOR
    assert tuple(photo[row, column]) != annotate.KNOWN_COLOR


def test_unknown_face_red_box(photo, face):
    drawn = annotate.draw_faces(photo, [labelled(face, None, 0.31)])
    row, column = left_edge_pixel(face, photo.shape)
    assert tuple(drawn[row, column]) == annotate.UNKNOWN_COLOR


def test_pixels_away_from_face_unchanged(photo, face):
    drawn = annotate.draw_faces(photo, [labelled(face, "Ariel_Sharon", 0.93)])
    x1, y1 = (int(v) for v in face.box[:2])
    assert x1 > 10
    assert y1 > 10
    np.testing.assert_array_equal(drawn[: y1 - 5, : x1 - 5], photo[: y1 - 5, : x1 - 5])


def test_caption_bar_below_box_has_text(photo, face):
    drawn = annotate.draw_faces(photo, [labelled(face, "José Ñúñez", 0.88)])
    width = annotate.line_width(photo.shape)
    bottom = int(np.ceil(float(face.box[3])))
    left, right = int(face.box[0]) + width, int(face.box[2]) - width
    bar = drawn[bottom + 1 : bottom + 12, left:right].reshape(-1, 3)
    colours = {tuple(pixel) for pixel in bar}
    assert annotate.KNOWN_COLOR in colours
    assert annotate.TEXT_COLOR in colours


def test_landmarks_drawn(photo, face):
    drawn = annotate.draw_faces(photo, [labelled(face, "Ariel_Sharon", 0.93)])
    for x, y in face.landmarks:
        assert tuple(drawn[int(round(y)), int(round(x))]) == annotate.LANDMARK_COLOR


def test_box_at_image_bottom_keeps_bar_inside(photo, face):
    shifted = labelled(face, "Ariel_Sharon", 0.93)
    height = photo.shape[0]
    shifted.box = np.array([face.box[0], height - 60.0, face.box[2], height - 1.0])
    drawn = annotate.draw_faces(photo, [shifted])
    width = annotate.line_width(photo.shape)
    bar_row = drawn[height - 1 - width - 2, int(face.box[0]) + width + 1 : int(face.box[2]) - width]
    assert any(tuple(pixel) == annotate.KNOWN_COLOR for pixel in bar_row)


def test_png_round_trip_original_size(photo, face):
    from PIL import Image

    faces = [labelled(face, "Ariel_Sharon", 0.93)]
    data = annotate.annotated_png(photo, faces)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "PNG"
    assert decoded.size == (photo.shape[1], photo.shape[0])
    np.testing.assert_array_equal(np.asarray(decoded.convert("RGB")), annotate.draw_faces(photo, faces))


def test_no_faces_gives_identical_image(photo):
    np.testing.assert_array_equal(annotate.draw_faces(photo, []), photo)
