"""Decode photos into upright RGB arrays, with size limits checked before decoding."""

from __future__ import annotations

import io
import re
import struct
import warnings
from pathlib import Path

import numpy as np

from kubeface.errors import InvalidInputError, PayloadTooLargeError

# A 14-megapixel phone photo decodes to about 40 MB of RGB; this default leaves room for
# 60-megapixel cameras and rejects decompression bombs long before they exhaust memory.
DEFAULT_MAX_PIXELS = 80_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".pgm", ".ppm", ".tif", ".tiff")
SUPPORTED_TEXT = "JPEG, PNG, BMP, WebP, GIF, PGM/PPM or TIFF"
EXIF_ORIENTATION = 0x0112


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes into an RGB uint8 H x W x 3 array; see decode_image_oriented."""
    return decode_image_oriented(data, max_pixels)[0]


def decode_image_oriented(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, int]:
    """Decode image bytes into an upright RGB uint8 H x W x 3 array and its EXIF orientation tag.

    The orientation tag (1 to 8, 1 when absent) is always applied, as the EXIF standard says
    and as phones and browsers display photos, so training and serving see the same pixels.
    A stale tag (an editor rotated the pixels but kept the tag) therefore turns a photo
    sideways. A stale tag cannot be detected reliably: MTCNN finds sideways faces with scores up to
    0.99, so "no face after rotating" does not identify it. The tag is returned so that
    reports can show which photos were rotated.

    Grayscale, 16-bit, palette and CMYK images become RGB; transparent pixels are composited
    onto white; only the first frame of an animation is used. Raises PayloadTooLargeError
    (HTTP 413) for more than max_pixels pixels, checked from the header before any pixel is
    decoded, and InvalidInputError for anything that is not a decodable image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise InvalidInputError(f"expected an image ({SUPPORTED_TEXT}); got 0 bytes")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its own limit (about 89 megapixels); the check below applies
            # max_pixels instead, so the warning adds nothing.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise PayloadTooLargeError(_too_many_pixels(f"{width}x{height} = {width * height}", max_pixels))
            image.load()
            orientation = _orientation_tag(image)
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image), orientation
    except Image.DecompressionBombError as error:
        # Image.open rejects more than twice Pillow's limit before the size reaches the check
        # above; its message carries the image's pixel count.
        found = re.search(r"\((\d+) pixels\)", str(error))
        size = found.group(1) if found else f"over {2 * Image.MAX_IMAGE_PIXELS}"
        raise PayloadTooLargeError(_too_many_pixels(size, max_pixels)) from error
    except UnidentifiedImageError as error:
        raise InvalidInputError(
            f"expected an image ({SUPPORTED_TEXT}); got {len(data)} bytes in no supported format "
            f"(they start with {data[:8]!r})"
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        # Pillow's decoders report damaged data with any of these.
        raise InvalidInputError(f"image data is truncated or corrupt ({len(data)} bytes): {error}") from error


def _too_many_pixels(size: str, max_pixels: int) -> str:
    return (f"image is {size} pixels, above the limit of {max_pixels}; downscale it or raise the "
            "pixel limit (a small file with this many pixels is a decompression bomb)")


def _orientation_tag(image) -> int:
    value = image.getexif().get(EXIF_ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(image) -> np.ndarray:
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return _wide_gray_to_rgb(np.asarray(image))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _wide_gray_to_rgb(array: np.ndarray) -> np.ndarray:
    """Map 16-bit (or 32-bit integer or float) grayscale to 8 bits and repeat it into RGB.

    16-bit samples are divided by 257, so 65535 becomes 255 and a 16-bit copy of an 8-bit photo
    (each value times 257) gives back the 8-bit values exactly. Integer data above 65535 is
    scaled by its maximum; integer data within 0..255 is taken as 8-bit.
    """
    values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(values.max()) if values.size else 0.0
    if array.dtype.kind == "f":
        # Float images (mode F) are read as 0..1 when they fit, else as 8-bit values.
        if top <= 1.0:
            scale = 255.0
        elif top > 255.0:
            scale = 255.0 / top
        else:
            scale = 1.0
    elif top <= 255.0 and array.dtype.itemsize != 2:
        scale = 1.0
    elif top <= 65535.0:
        scale = 1.0 / 257.0
    else:
        scale = 255.0 / top
    gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def read_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file; see decode_image_oriented."""
    return read_image_oriented(path, max_pixels)[0]


def read_image_oriented(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, int]:
    """Read and decode an image file into upright RGB and its EXIF orientation tag."""
    with open(path, "rb") as stream:
        return decode_image_oriented(stream.read(), max_pixels=max_pixels)


def encode_png(image: np.ndarray) -> bytes:
    """Encode an RGB uint8 array as PNG bytes."""
    import cv2

    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InvalidInputError(f"cannot encode an image of shape {image.shape} as PNG")
    return buffer.tobytes()


def image_files(arguments: list[str]) -> list[Path]:
    """Expand files and folders (searched recursively for IMAGE_SUFFIXES) into files, in a stable order.

    A file named directly is kept whatever its suffix. A path that does not exist, or that is
    neither a regular file nor a folder (a named pipe), raises InvalidInputError.
    """
    files = []
    for raw in arguments:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            # Reading a named pipe would wait for a writer forever.
            raise InvalidInputError(f"photo {raw} is not a regular file; pass image files or folders")
        else:
            raise InvalidInputError(f"photo {raw} does not exist; pass image files or folders that contain some")
    return files
