"""Awkward photos decode to RGB and give the same faces as their plain RGB version.

Real photos come from the shared awkward/ set and the bundled demo photos; the variants
(16-bit, CMYK, palette, EXIF-rotated, damaged) are built from them here.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import image_variants
from kubeface.align import AlignSettings, crop_face
from kubeface.errors import InvalidInputError, PayloadTooLargeError
from kubeface.imageio import DEFAULT_MAX_PIXELS, decode_image, decode_image_oriented, read_image


@pytest.fixture(scope="module")
def portrait(demo_root) -> Image.Image:
    """A real 250 x 250 LFW photo with one centred face."""
    return Image.open(demo_root / "dataset" / "Colin_Powell" / "Colin_Powell_0001.jpg").convert("RGB")


@pytest.fixture(scope="module")
def awkward(shared_data):
    return shared_data / "awkward"


def boxes_of(faces) -> np.ndarray:
    """N x 4 boxes ordered left to right, so two detections of one scene line up."""
    return np.array(sorted((f.box.tolist() for f in faces), key=lambda b: b[0])).reshape(-1, 4)


def assert_same_faces(found, expected, tolerance_px: float) -> None:
    assert len(found) == len(expected)
    assert np.abs(boxes_of(found) - boxes_of(expected)).max(initial=0.0) <= tolerance_px


# Decoding failures: each raises InvalidInputError with a message that names the problem.

def test_decode_zero_bytes():
    with pytest.raises(InvalidInputError, match=r"got 0 bytes"):
        decode_image(b"")


def test_decode_text_file():
    with pytest.raises(InvalidInputError, match=r"got 12 bytes in no supported format \(they start with b'hello, w'\)"):
        decode_image(b"hello, world")


def test_decode_ds_store_bytes():
    # The first bytes of a real macOS .DS_Store file.
    data = b"\x00\x00\x00\x01Bud1" + bytes(2040)
    with pytest.raises(InvalidInputError, match=r"2048 bytes in no supported format"):
        decode_image(data)


def test_decode_truncated_jpeg(portrait):
    data = image_variants.encode(portrait, "JPEG", quality=90)
    with pytest.raises(InvalidInputError, match=rf"image data is truncated or corrupt \({len(data) // 2} bytes\)"):
        decode_image(data[: len(data) // 2])


def test_decode_jpeg_header_only(portrait):
    data = image_variants.encode(portrait, "JPEG", quality=90)[:200]
    with pytest.raises(InvalidInputError, match=r"truncated or corrupt \(200 bytes\)"):
        decode_image(data)


# The pixel limit: checked from the header, before decoding.

def test_pixel_limit_rejects_bomb():
    bomb = image_variants.png_header_only(10_000, 10_000)
    assert len(bomb) < 200
    with pytest.raises(PayloadTooLargeError) as caught:
        decode_image(bomb)
    assert str(caught.value) == (
        f"image is 10000x10000 = 100000000 pixels, above the limit of {DEFAULT_MAX_PIXELS}; downscale it "
        "or raise the pixel limit (a small file with this many pixels is a decompression bomb)")
    assert caught.value.status_code == 413


def test_pixel_limit_beyond_pillow_limit():
    # Above twice its own limit Pillow rejects the image in Image.open, and the error is still a 413.
    bomb = image_variants.png_header_only(100_000, 100_000)
    with pytest.raises(PayloadTooLargeError, match=r"above the limit of 80000000; downscale it"):
        decode_image(bomb)


def test_pixel_limit_is_configurable(portrait):
    data = image_variants.encode(portrait, "PNG")
    with pytest.raises(PayloadTooLargeError, match=r"image is 250x250 = 62500 pixels, above the limit of 62499"):
        decode_image(data, max_pixels=62_499)
    assert decode_image(data, max_pixels=62_500).shape == (250, 250, 3)


# Modes: the decoded pixels equal the plain RGB version, and the detector finds the same faces.

def test_grayscale_8bit_equals_rgb(portrait, detector):
    gray = portrait.convert("L")
    decoded = decode_image(image_variants.encode(gray, "PNG"))
    plain = np.asarray(gray.convert("RGB"))
    np.testing.assert_array_equal(decoded, plain)
    faces = detector.detect(decoded)
    assert len(faces) == 1
    assert_same_faces(faces, detector.detect(np.asarray(portrait)), tolerance_px=6.0)


def test_grayscale_16bit_equals_8bit(portrait):
    decoded = decode_image(image_variants.gray16(portrait))
    np.testing.assert_array_equal(decoded, np.asarray(portrait.convert("L").convert("RGB")))


def test_grayscale_16bit_dark_photo_keeps_levels(shared_data):
    # An ORL face never reaches gray level 255, so stretching its 16-bit copy to the maximum would change it.
    gray = Image.open(shared_data / "att_orl" / "s1" / "1.pgm")
    assert gray.getextrema()[1] < 255
    decoded = decode_image(image_variants.gray16(gray))
    np.testing.assert_array_equal(decoded[:, :, 0], np.asarray(gray))


def test_grayscale_real_photos(awkward, detector):
    for name, size in (("grayscale/skimage_camera.png", (512, 512)), ("grayscale/orl_s1_1.pgm", (28, 23))):
        source = Image.open(awkward / name)
        assert source.mode == "L"
        decoded = read_image(awkward / name)
        assert decoded.shape == (*size, 3)
        np.testing.assert_array_equal(decoded, np.asarray(source.convert("RGB")))
    camera = read_image(awkward / "grayscale" / "skimage_camera.png")
    assert len(detector.detect(camera)) == 1


def test_cmyk_jpeg_same_faces(portrait, detector):
    cmyk = image_variants.encode(portrait.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(cmyk)).mode == "CMYK"
    decoded = decode_image(cmyk)
    plain = decode_image(image_variants.encode(portrait, "JPEG", quality=95))
    # Both went through JPEG at the same quality; CMYK adds one more rounding.
    assert np.abs(decoded.astype(int) - plain.astype(int)).mean() < 3.0
    assert_same_faces(detector.detect(decoded), detector.detect(plain), tolerance_px=3.0)


def test_palette_png_same_faces(portrait, detector):
    palette = portrait.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    decoded = decode_image(image_variants.encode(palette, "PNG"))
    np.testing.assert_array_equal(decoded, np.asarray(palette.convert("RGB")))
    assert_same_faces(detector.detect(decoded), detector.detect(np.asarray(portrait)), tolerance_px=6.0)


def test_palette_png_transparency_white(portrait):
    palette = portrait.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    transparent_index = np.asarray(palette)[0, 0]
    decoded = decode_image(image_variants.encode(palette, "PNG", transparency=int(transparent_index)))
    assert decoded[0, 0].tolist() == [255, 255, 255]


def test_alpha_png_opaque_equals_rgb(awkward):
    # ageitgey's RGBA fixtures have alpha 255 everywhere: the RGB channels come through unchanged.
    for name in ("ageitgey_32bit.png", "ageitgey_alex-lacamoire.png", "ageitgey_lin-manuel-miranda.png"):
        source = Image.open(awkward / "alpha_png" / name)
        assert source.mode == "RGBA"
        np.testing.assert_array_equal(read_image(awkward / "alpha_png" / name), np.asarray(source.convert("RGB")))


def test_alpha_png_transparent_background(awkward, detector):
    source = Image.open(awkward / "derived" / "astronaut_rgba_transparent_bg.png")
    alpha = np.asarray(source)[:, :, 3]
    decoded = read_image(awkward / "derived" / "astronaut_rgba_transparent_bg.png")
    # Transparent pixels become white, not the black stored under them.
    assert (decoded[alpha == 0] == 255).all()
    opaque = alpha == 255
    np.testing.assert_array_equal(decoded[opaque], np.asarray(source)[:, :, :3][opaque])
    plain = read_image(awkward / "misc" / "skimage_astronaut.png")
    faces = detector.detect(decoded)
    assert len(faces) == 1
    assert_same_faces(faces, detector.detect(plain), tolerance_px=4.0)


# EXIF orientation: applied on decode, so a sideways-stored photo is searched upright.

@pytest.mark.parametrize("tag", [3, 6, 8])
def test_exif_rotation_exact(portrait, tag):
    decoded, orientation = decode_image_oriented(image_variants.rotated_with_tag(portrait, tag))
    assert orientation == tag
    np.testing.assert_array_equal(decoded, np.asarray(portrait))


def test_exif_rotation_derived_astronaut(awkward, detector):
    decoded, orientation = decode_image_oriented((awkward / "derived" / "astronaut_exif_orientation8.jpg").read_bytes())
    assert orientation == 8
    plain = read_image(awkward / "misc" / "skimage_astronaut.png")
    # The file is a JPEG of the turned pixels, so the two differ by JPEG rounding only.
    assert np.abs(decoded.astype(int) - plain.astype(int)).mean() < 4.0
    assert_same_faces(detector.detect(decoded), detector.detect(plain), tolerance_px=4.0)


def test_exif_rotation_phone_photo(awkward, detector):
    path = awkward / "exif_orientation" / "mei_Samsung_GT-I9000.jpg"
    stored = Image.open(path)
    assert stored.size == (640, 480)
    decoded, orientation = decode_image_oriented(path.read_bytes())
    assert orientation == 6
    assert decoded.shape == (640, 480, 3)
    faces = detector.detect(decoded)
    # The person and the reflection in the window.
    assert len(faces) == 2
    best = faces[0]
    left_eye, right_eye, nose = best.landmarks[0], best.landmarks[1], best.landmarks[2]
    # Upright: the eyes sit side by side above the nose.
    assert abs(right_eye[0] - left_eye[0]) > 2 * abs(right_eye[1] - left_eye[1])
    assert nose[1] > max(left_eye[1], right_eye[1])
    assert detector.detect(np.asarray(stored.convert("RGB"))) == []


def test_exif_stale_tag_is_applied(awkward):
    # The pixels are already upright but the tag is 6: kubeface follows the tag, as documented.
    path = awkward / "exif_orientation_stale_tag" / "mei_Sony_Cybershot_3.jpg"
    stored = Image.open(path)
    assert stored.size == (311, 450)
    decoded, orientation = decode_image_oriented(path.read_bytes())
    assert orientation == 6
    assert decoded.shape == (311, 450, 3)
    np.testing.assert_array_equal(decoded, np.asarray(stored.convert("RGB").transpose(Image.Transpose.ROTATE_270)))


# Geometry: very large photos and faces cut by the border.

def test_large_photo_boxes_mapped_back(portrait, detector):
    small = np.asarray(portrait)
    factor = 12
    large = np.asarray(portrait.resize((250 * factor, 250 * factor), Image.Resampling.BICUBIC))
    assert max(large.shape[:2]) > detector.settings.max_detect_side
    found = detector.detect(large)
    expected = detector.detect(small)
    assert len(found) == 1
    assert len(expected) == 1
    # Detected at 2000 / 3000 of full size, the box must still be 12 times the small one.
    assert np.abs(found[0].box - expected[0].box * factor).max() <= 0.06 * factor * expected[0].width


def test_large_real_photo(awkward, detector):
    image = read_image(awkward / "large" / "deepface_img40.jpg")
    assert image.shape == (4600, 3061, 3)
    faces = detector.detect(image)
    assert len(faces) == 1
    reduced = np.asarray(Image.fromarray(image).reduce(4))
    expected = detector.detect(reduced)
    assert len(expected) == 1
    assert np.abs(faces[0].box - expected[0].box * 4).max() <= 0.06 * faces[0].width
    assert faces[0].width > 400


def test_face_cut_by_border(portrait, detector):
    cut = np.asarray(image_variants.face_cut_by_border(portrait))
    faces = detector.detect(cut)
    assert len(faces) == 1
    box = faces[0].box
    height, width = cut.shape[:2]
    assert box[0] == 0.0
    assert 0 <= box[1] < box[3] <= height
    assert box[2] <= width
    crop = crop_face(cut, faces[0], AlignSettings())
    assert crop.shape == (160, 160, 3)
    assert crop.std() > 20


def test_face_cut_by_border_real(awkward, detector):
    for name in ("ageitgey_obama_partial_face.jpg", "ageitgey_obama_partial_face2.jpg"):
        image = read_image(awkward / "hard" / name)
        faces = detector.detect(image)
        assert faces
        height, width = image.shape[:2]
        for face in faces:
            assert 0 <= face.box[0] < face.box[2] <= width
            assert 0 <= face.box[1] < face.box[3] <= height
            crop = crop_face(image, face, AlignSettings())
            assert crop.shape == (160, 160, 3)
            assert crop.std() > 10


def test_huge_header_names_real_pixel_count():
    # A PNG whose header claims 20000 x 20000 pixels: Pillow's own bomb check fires first.
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(PayloadTooLargeError) as caught:
        decode_image(data)
    assert "image is 400000000 pixels" in str(caught.value)
    assert "above the limit of 80000000" in str(caught.value)
