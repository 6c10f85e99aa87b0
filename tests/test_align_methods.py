"""Alignment methods: the box crop, the five-landmark similarity crop and the no-face centre crop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kubeface import align
from kubeface.align import AlignSettings
from kubeface.errors import InvalidInputError
from kubeface.imageio import read_image


def _rotation(degrees: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.column_stack([rotation, shift])


def test_similarity_transform_recovers_known_transform():
    source = np.array([[30.0, 40.0], [70.0, 41.0], [50.0, 60.0], [35.0, 80.0], [66.0, 79.0]])
    expected = _rotation(30.0, 2.0, (5.0, -3.0))
    target = source @ expected[:, :2].T + expected[:, 2]
    assert align.similarity_transform(source, target) == pytest.approx(expected, abs=1e-9)


def test_similarity_transform_never_reflects():
    source = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mirrored = source * [-1.0, 1.0]
    matrix = align.similarity_transform(source, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_similarity_transform_rejects_coincident_points():
    with pytest.raises(InvalidInputError, match="all at one point"):
        align.similarity_transform(np.ones((5, 2)), np.zeros((5, 2)))


def test_settings_reject_unknown_method():
    with pytest.raises(InvalidInputError, match="align method must be one of"):
        AlignSettings(method="affine")


def test_settings_default_is_box_with_24_px():
    assert AlignSettings() == AlignSettings(margin=24, image_size=160, method="box")


def test_settings_from_json_without_method_is_box():
    settings = AlignSettings.from_json({"margin": 20, "image_size": 160})
    assert settings == AlignSettings(margin=20, image_size=160, method="box")


def test_template_points_32_px_margin():
    # The template is where box crops of the same margin put an average face's landmarks.
    points = align.template_points(AlignSettings(margin=32, method="similarity"))
    width, height = align.TYPICAL_BOX_SIZE
    expected_x = (align.FIVE_POINT_LAYOUT[:, 0] * width + 16) / (width + 32) * 160
    expected_y = (align.FIVE_POINT_LAYOUT[:, 1] * height + 16) / (height + 32) * 160
    assert points[:, 0] == pytest.approx(expected_x)
    assert points[:, 1] == pytest.approx(expected_y)
    # Left eye left of the right eye, eyes above the nose, nose above the mouth.
    assert points[0, 0] < points[1, 0]
    assert points[0, 1] < points[2, 1] < points[3, 1]


def test_centre_face_box_and_landmarks():
    face = align.centre_face((250, 250, 3))
    assert face.box == pytest.approx(np.array(align.CENTRE_BOX) * 250)
    assert face.score == 0.0
    assert np.all(face.landmarks[:, 0] > face.box[0])
    assert np.all(face.landmarks[:, 0] < face.box[2])
    assert np.all(face.landmarks[:, 1] > face.box[1])
    assert np.all(face.landmarks[:, 1] < face.box[3])


@pytest.fixture(scope="module")
def tilted_photo(demo_root, detector):
    """A demo photo rotated by 20 degrees about its centre, with its most central face."""
    photo = sorted((demo_root / "dataset").glob("*/*.jpg"))[0]
    image = read_image(photo)
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 20.0, 1.0)
    rotated = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
    face = align.choose_face(detector.detect(rotated), rotated.shape)
    assert face is not None
    return rotated, face


def _eye_slope(detector, crop: np.ndarray) -> float:
    face = align.choose_face(detector.detect(crop, min_face_size=40), crop.shape)
    assert face is not None
    (left_x, left_y), (right_x, right_y) = face.landmarks[0], face.landmarks[1]
    return float(np.degrees(np.arctan2(right_y - left_y, right_x - left_x)))


def test_similarity_crop_levels_tilted_head(detector, tilted_photo):
    image, face = tilted_photo
    tilted = _eye_slope(detector, align.crop_face(image, face, AlignSettings(method="box")))
    levelled = _eye_slope(detector, align.crop_face(image, face, AlignSettings(method="similarity")))
    assert abs(tilted) > 12.0
    assert abs(levelled) < 4.0


def test_similarity_crop_puts_landmarks_on_template(detector, tilted_photo):
    image, face = tilted_photo
    settings = AlignSettings(method="similarity")
    crop = align.crop_face(image, face, settings)
    assert crop.shape == (160, 160, 3)
    # Detected again on the crop, the landmarks sit near the template; a similarity cannot fit
    # five points exactly, so a few pixels of residual remain.
    found = align.choose_face(detector.detect(crop, min_face_size=40), crop.shape)
    distances = np.linalg.norm(found.landmarks - align.template_points(settings), axis=1)
    assert distances.max() < 10.0


def test_box_crop_unchanged_by_method_field(tilted_photo):
    image, face = tilted_photo
    x1, y1, x2, y2 = align.crop_box(face, image.shape, 32)
    expected = cv2.resize(image[y1:y2, x1:x2], (160, 160),
                          interpolation=cv2.INTER_AREA if y2 - y1 > 160 else cv2.INTER_LINEAR)
    assert np.array_equal(align.crop_face(image, face, AlignSettings(margin=32, method="box")), expected)
