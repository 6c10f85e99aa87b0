"""Build awkward encodings of a real photo for tests: other modes, EXIF rotations, damaged files."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112
# Pillow's transpose that stores an upright photo so that the given EXIF tag makes it upright again.
STORE_FOR_TAG = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def rotated_with_tag(image: Image.Image, tag: int, image_format: str = "PNG") -> bytes:
    """Store the pixels turned so that only applying EXIF orientation `tag` shows them upright."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = tag
    options = {"quality": 95} if image_format == "JPEG" else {}
    return encode(image.transpose(STORE_FOR_TAG[tag]), image_format, exif=exif, **options)


def gray16(image: Image.Image) -> bytes:
    """A 16-bit grayscale PNG of the photo's 8-bit gray values, each times 257 (so 255 -> 65535)."""
    gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(gray), "PNG")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels but holds one tiny compressed row.

    It is what a decompression bomb looks like before decoding: a few hundred bytes that
    promise billions of pixels.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def face_cut_by_border(image: Image.Image, keep_fraction: float = 0.45) -> Image.Image:
    """Keep the right part of a centred portrait, so the face runs past the left border."""
    width, height = image.size
    return image.crop((int(width * keep_fraction), 0, width, height))


def two_faces(main: Image.Image, other: Image.Image, other_side: int = 110) -> Image.Image:
    """Put a photo at the centre of a wider white canvas and a smaller other photo in a corner."""
    canvas = Image.new("RGB", (main.width + 2 * other_side, main.height), (255, 255, 255))
    canvas.paste(main, (other_side, 0))
    canvas.paste(other.resize((other_side, other_side)), (0, 0))
    return canvas
