"""Aligned face crops and their embeddings, cached in the store by photo content.

An entry is found by the sha256 of the photo's bytes inside a namespace whose name is a digest
of everything else that shapes the result: the checksums of the four IR files, the alignment
settings and the detector settings. A retrain after adding one person therefore detects,
aligns and embeds only that person's photos. Entries live under
<store>/cache/faces/<namespace>/<sha[:2]>/<sha>.npz, through the Store interface, so the
local store and S3 behave the same.

An entry records what alignment found: "aligned" with the face's box, score, crop and
embedding, or "no_face". Each entry carries a sha256 of its arrays. An entry that fails the
check or does not parse counts as a miss, so it is computed and written again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import zipfile
import zlib

import numpy as np

from kubeface.align import AlignSettings
from kubeface.convert import EMBEDDING_SIZE
from kubeface.detect import DetectorSettings
from kubeface.errors import KubefaceError, NotFoundError
from kubeface.store import Store, open_store

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
CACHE_PREFIX = "cache/faces"
ALIGNED = "aligned"
NO_FACE = "no_face"


def namespace(ir_info: dict, align: AlignSettings, detector: DetectorSettings) -> str:
    """Return the digest naming the cache entries valid for these IRs and settings."""
    parts = {
        "format": CACHE_FORMAT,
        "ir": {
            name: [entry["xml_sha256"], entry["bin_sha256"]]
            for name, entry in sorted(ir_info["files"].items())
        },
        "align": align.to_json(),
        "detector": dataclasses.asdict(detector),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@dataclasses.dataclass
class CachedFace:
    """The alignment and embedding results of one photo."""

    status: str
    """ALIGNED or NO_FACE."""
    faces: int
    """Number of faces the detector found in the photo."""
    box: list[float] | None = None
    """The chosen face's [x1, y1, x2, y2] in pixels of the photo."""
    score: float | None = None
    """The chosen face's detection probability."""
    crop: np.ndarray | None = None
    """S x S x 3 uint8 RGB crop fed to FaceNet."""
    embedding: np.ndarray | None = None
    """512 float32, L2-normalised."""

    def row_fields(self) -> dict:
        """Return the fields that an align index row takes from this entry."""
        fields = {"status": self.status, "faces": self.faces}
        if self.status == ALIGNED:
            fields.update(box=self.box, score=self.score)
        else:
            fields["reason"] = "no face detected"
        return fields


def _array_digest(crop: np.ndarray, embedding: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (crop, embedding):
        digest.update(str(array.dtype).encode() + str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def encode_entry(photo_sha256: str, space: str, entry: CachedFace) -> bytes:
    """Serialise an entry as an .npz without object arrays, so that reading it runs no code."""
    crop = entry.crop if entry.crop is not None else np.zeros((0, 0, 3), np.uint8)
    embedding = entry.embedding if entry.embedding is not None else np.zeros(0, np.float32)
    crop, embedding = np.asarray(crop, np.uint8), np.asarray(embedding, np.float32)
    meta = {
        "format": CACHE_FORMAT,
        "photo_sha256": photo_sha256,
        "namespace": space,
        "status": entry.status,
        "faces": entry.faces,
        "box": entry.box,
        "score": entry.score,
        "arrays_sha256": _array_digest(crop, embedding),
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, crop=crop, embedding=embedding, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8)
    )
    return buffer.getvalue()


def decode_entry(data: bytes, photo_sha256: str, space: str, image_size: int) -> CachedFace:
    """Parse and check an entry; raises ValueError when it is damaged or belongs elsewhere."""
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        crop, embedding = arrays["crop"], arrays["embedding"]
        meta = json.loads(arrays["meta"].tobytes().decode())
    if meta.get("format") != CACHE_FORMAT or meta.get("photo_sha256") != photo_sha256:
        raise ValueError(f"entry is for photo {meta.get('photo_sha256')}, format {meta.get('format')}")
    if meta.get("namespace") != space:
        raise ValueError(f"entry belongs to namespace {meta.get('namespace')}")
    if _array_digest(crop, embedding) != meta.get("arrays_sha256"):
        raise ValueError("the arrays do not match their recorded sha256")
    entry = CachedFace(
        status=meta["status"], faces=int(meta["faces"]), box=meta.get("box"), score=meta.get("score")
    )
    if entry.status == ALIGNED:
        if crop.shape != (image_size, image_size, 3) or embedding.shape != (EMBEDDING_SIZE,):
            raise ValueError(f"crop {crop.shape} or embedding {embedding.shape} has the wrong shape")
        entry.crop, entry.embedding = crop, embedding
    elif entry.status != NO_FACE:
        raise ValueError(f"unknown status {entry.status!r}")
    return entry


class FaceCache:
    """Cached alignment and embedding results of one namespace in one store."""

    def __init__(self, store: Store, space: str, image_size: int):
        self.store = store
        self.namespace = space
        self.image_size = image_size
        self.hits = 0
        self.misses = 0
        self.written = 0

    @classmethod
    def open(
        cls, store_uri: str, s3_endpoint: str, ir_info: dict, align: AlignSettings, detector: DetectorSettings
    ) -> "FaceCache":
        """Open the cache for the IRs that ir_info describes (read_ir_info) and these settings."""
        space = namespace(ir_info, align, detector)
        return cls(open_store(store_uri or None, s3_endpoint or None), space, align.image_size)

    @classmethod
    def reopen(cls, description: dict, s3_endpoint: str = "") -> "FaceCache":
        """Open the cache that describe() returned, in a later stage."""
        store = open_store(description["store"], s3_endpoint or None)
        return cls(store, description["namespace"], int(description["image_size"]))

    def describe(self) -> dict:
        """Return what a later stage needs to reopen this cache (no credentials)."""
        return {"store": self.store.uri, "namespace": self.namespace, "image_size": self.image_size}

    def object_key(self, photo_sha256: str) -> str:
        return f"{CACHE_PREFIX}/{self.namespace}/{photo_sha256[:2]}/{photo_sha256}.npz"

    def get(self, photo_sha256: str) -> CachedFace | None:
        """Return the entry of a photo, or None (a miss) when there is none or it is damaged."""
        key = self.object_key(photo_sha256)
        try:
            entry = decode_entry(self.store.read_bytes(key), photo_sha256, self.namespace, self.image_size)
        except NotFoundError:
            entry = None
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            logger.warning("ignoring the damaged cache entry %s in %s: %s", key, self.store.uri, error)
            entry = None
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, photo_sha256: str, entry: CachedFace) -> None:
        """Store an entry; a store error is logged and the run goes on without caching it."""
        key = self.object_key(photo_sha256)
        try:
            self.store.write_bytes(key, encode_entry(photo_sha256, self.namespace, entry))
        except KubefaceError as error:
            logger.warning("could not write cache entry %s to %s: %s", key, self.store.uri, error)
            return
        self.written += 1
