"""Decode a request's images and recognize their faces, embedding all faces of a request together."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from kubeface.align import crop_face
from kubeface.errors import InvalidInputError, PayloadTooLargeError
from kubeface.faces import Face
from kubeface.imageio import decode_image


@dataclasses.dataclass
class DecodedImages:
    """RGB uint8 H x W x 3 arrays in request order, with the decode time of each in ms."""

    images: list[np.ndarray]
    decode_ms: list[float]


@dataclasses.dataclass
class ImageFaces:
    """The faces of one image and the time its detection took, in ms."""

    faces: list[Face]
    detect_ms: float


def decode_images(encoded: list[bytes], labels: list[str], max_pixels: int) -> DecodedImages:
    """Decode every image, or raise the first image's error prefixed with where it came from.

    max_pixels bounds each image and the sum over all images of the request, so one request
    never keeps more than about max_pixels decoded pixels in memory.
    """
    images, decode_ms = [], []
    total = 0
    for data, label in zip(encoded, labels):
        start = time.perf_counter()
        try:
            image = decode_image(data, max_pixels=max_pixels)
        except InvalidInputError as error:
            raise type(error)(f"{label}: {error}") from error
        decode_ms.append((time.perf_counter() - start) * 1000)
        total += image.shape[0] * image.shape[1]
        if total > max_pixels:
            raise PayloadTooLargeError(
                f"the images up to {label} have {total} pixels together, above the limit of {max_pixels} "
                "per request; send fewer or smaller images"
            )
        images.append(image)
    return DecodedImages(images=images, decode_ms=decode_ms)


def recognize_images(recognizer, images: list[np.ndarray], min_face_size: int | None) -> tuple[list[ImageFaces], float]:
    """Detect the faces of every image, then embed and classify all of them in one call.

    Returns the faces per image and the embed-and-classify time in ms. The embedder splits
    the crops into batches of its batch_size, so a request with up to that many faces runs
    FaceNet once. Not thread-safe: the detector and embedder reuse their inference requests.
    """
    per_image, crops = [], []
    size = recognizer.align.image_size
    for image in images:
        start = time.perf_counter()
        faces = recognizer.detector.detect(image, min_face_size=min_face_size)
        per_image.append(ImageFaces(faces=faces, detect_ms=(time.perf_counter() - start) * 1000))
        crops.extend(crop_face(image, face, recognizer.align) for face in faces)
    start = time.perf_counter()
    all_faces = [face for item in per_image for face in item.faces]
    recognizer.classify(all_faces, np.asarray(crops, np.uint8).reshape(-1, size, size, 3))
    return per_image, (time.perf_counter() - start) * 1000
