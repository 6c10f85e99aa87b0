"""Decode photos into upright RGB arrays, with size limits checked before decoding."""

from __future__ import annotations

import io
import warnings

import numpy as np

from kubeface.errors import InvalidInputError, PayloadTooLargeError

# A 14-megapixel phone photo decodes to about 40 MB of RGB; this default leaves room for
# 60-megapixel cameras and rejects decompression bombs long before they exhaust memory.
DEFAULT_MAX_PIXELS = 80_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".pgm", ".ppm", ".tif", ".tiff")
SUPPORTED_TEXT = "JPEG, PNG, BMP, WebP, GIF, PGM/PPM or TIFF"


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes into an RGB uint8 H x W x 3 array.

    EXIF orientation is applied; grayscale, 16-bit, palette and CMYK images become RGB;
    transparent pixels are composited onto white; only the first frame of an animation is used.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise InvalidInputError(f"expected an image ({SUPPORTED_TEXT}); got 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise PayloadTooLargeError(
                    f"image is {width}x{height} = {width * height} pixels, above the limit of "
                    f"{max_pixels}; downscale it or raise the pixel limit"
                )
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return _to_rgb(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidInputError(
            f"expected an image ({SUPPORTED_TEXT}); got {len(data)} bytes that are not one: {error}"
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidInputError(f"image data is truncated or corrupt ({len(data)} bytes): {error}") from error


def _to_rgb(image) -> np.ndarray:
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = array.max() if array.size and array.max() > 255 else 255.0
        gray = np.clip(array * (255.0 / max(top, 1.0)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def read_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file; see decode_image."""
    with open(path, "rb") as stream:
        return decode_image(stream.read(), max_pixels=max_pixels)


def encode_png(image: np.ndarray) -> bytes:
    """Encode an RGB uint8 array as PNG bytes."""
    import cv2

    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InvalidInputError(f"cannot encode an image of shape {image.shape} as PNG")
    return buffer.tobytes()
