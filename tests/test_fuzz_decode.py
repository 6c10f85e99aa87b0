"""Fuzz the image decoder: any bytes give an RGB array or InvalidInputError, nothing else.

Bounded for CI: a fixed number of examples per test and a generous per-example deadline.
"""

from __future__ import annotations

import datetime
import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeface.errors import InvalidInputError, PayloadTooLargeError
from kubeface.imageio import decode_image_oriented

# Small pixel limit: a mutated header can claim any size, and the fuzz is about robustness,
# not about allocating large buffers.
FUZZ_MAX_PIXELS = 1_000_000
# KUBEFACE_FUZZ_EXAMPLES raises the count for a longer local search.
FUZZ_SETTINGS = settings(max_examples=int(os.environ.get("KUBEFACE_FUZZ_EXAMPLES", "150")), deadline=datetime.timedelta(seconds=5),
                         suppress_health_check=[HealthCheck.too_slow], database=None)


def _seed_images() -> dict[str, bytes]:
    """Encode one small real-looking image in every supported format, with and without EXIF."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(12, 9, 3), dtype=np.uint8)
    rgb = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = {}
    for name, image, options in (
        ("jpeg", rgb, {"format": "JPEG", "exif": exif}),
        ("png", rgb, {"format": "PNG", "exif": exif}),
        ("png-rgba", rgb.convert("RGBA"), {"format": "PNG"}),
        ("png-palette", rgb.convert("P"), {"format": "PNG", "transparency": 0}),
        ("png-16bit", Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257), {"format": "PNG"}),
        ("gif", rgb.convert("P"), {"format": "GIF"}),
        ("bmp", rgb, {"format": "BMP"}),
        ("webp", rgb, {"format": "WEBP", "lossless": True}),
        ("tiff", rgb.convert("CMYK"), {"format": "TIFF"}),
        ("pgm", rgb.convert("L"), {"format": "PPM"}),
        ("jpeg-cmyk", rgb.convert("CMYK"), {"format": "JPEG"}),
    ):
        buffer = io.BytesIO()
        image.save(buffer, **options)
        seeds[name] = buffer.getvalue()
    return seeds


SEEDS = _seed_images()


def _check_decoded(data: bytes) -> None:
    try:
        image, orientation = decode_image_oriented(data, max_pixels=FUZZ_MAX_PIXELS)
    except InvalidInputError as error:
        assert str(error)
        if isinstance(error, PayloadTooLargeError):
            assert "above the limit of" in str(error)
        return
    assert image.dtype == np.uint8
    assert image.ndim == 3
    assert image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= FUZZ_MAX_PIXELS
    assert image.flags.c_contiguous
    assert 1 <= orientation <= 8


@FUZZ_SETTINGS
@given(st.binary(max_size=2048))
def test_decode_random_bytes(data):
    _check_decoded(data)


@FUZZ_SETTINGS
@given(st.sampled_from(sorted(SEEDS)), st.data())
def test_decode_mutated_images(name, data):
    """Flip, overwrite, insert and cut bytes of valid files, which reaches the decoders' inner paths."""
    blob = bytearray(SEEDS[name])
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "cut"]), label="kind")
        if not blob:
            break
        position = data.draw(st.integers(0, max(0, len(blob) - 1)), label="position")
        if kind == "flip":
            blob[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif kind == "set":
            blob[position] = data.draw(st.integers(0, 255), label="byte")
        elif kind == "insert":
            blob[position:position] = data.draw(st.binary(min_size=1, max_size=16), label="inserted")
        else:
            del blob[position:]
    _check_decoded(bytes(blob))


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_decode_seed_images(name):
    """The unmutated seeds decode to the seed's size, so the mutation test starts from valid files."""
    image, orientation = decode_image_oriented(SEEDS[name], max_pixels=FUZZ_MAX_PIXELS)
    upright = (9, 12) if name in ("jpeg", "png") else (12, 9)
    assert image.shape[:2] == upright
    assert orientation == (6 if name in ("jpeg", "png") else 1)
