"""Embed a list of photo files once each, through detection, alignment and FaceNet, with a disk cache.

Each photo goes through the pipeline's own code: imageio.decode_image, Detector.detect,
align.choose_face, align.crop_face and Embedder. A photo without a detected face falls back
to a centre crop (align.centre_face) and is counted. Detections and embeddings are cached in
.npz files under $KUBEFACE_CACHE/photos. A cached value is used only for a photo with the same
sha256, the same networks and settings, and the same source code of the modules that computed
it. So a second run with other distance or protocol settings embeds nothing, while any edit to
the detection, alignment or embedding code computes everything again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kubeface import align as alignment
from kubeface import convert, detect, embed, imageio
from kubeface.align import AlignSettings, centre_face, choose_face, crop_face
from kubeface.detect import Detector, DetectorSettings
from kubeface.embed import DEFAULT_BATCH_SIZE, Embedder, EmbedSettings, combine_mirrored, mirror
from kubeface.errors import InvalidInputError, KubefaceError
from kubeface.faces import Face
from kubeface.imageio import decode_image

logger = logging.getLogger(__name__)

CHUNK_PHOTOS = 64
SAVE_EVERY_PHOTOS = 1024
ORIGINAL = "original"
MIRRORED = "mirrored"


def default_cache_dir() -> Path:
    """Return the folder for cached detections and embeddings: photos/ next to the IR cache."""
    return convert.default_cache_dir().parent / "photos"


@dataclasses.dataclass
class PhotoEmbeddings:
    """Embeddings of a list of photos, in the order of names, with counts of how they were obtained."""

    names: list[str]
    embeddings: np.ndarray
    """N x 512 float32, L2-normalised."""
    no_face: list[str]
    """Photos without a detected face, embedded from a centre crop."""
    several_faces: list[str]
    """Photos with more than one detected face; align.choose_face picked one."""
    detected: int
    """Photos that went through the detector in this run (the rest came from the cache)."""
    embedded: int
    """Network inputs embedded in this run, counting a mirrored view as one."""
    seconds: float
    cpu_seconds: float


class _NpzCache:
    """Per-photo records stored in one .npz file, valid while the photo's sha256 is unchanged.

    The detection thread and the embedding thread share a cache, so every access takes the lock.
    Two processes saving the same file never corrupt it, but the last one to save wins.
    """

    def __init__(self, path: Path | None, fields: dict[str, tuple[tuple[int, ...], type]], description: dict):
        self.path = path
        self.fields = fields
        self.description = description
        self.records: dict[str, tuple[str, dict]] = {}
        self.dirty = False
        self._lock = threading.Lock()
        if path is not None and path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                names, hashes = data["names"], data["sha256"]
                columns = {field: data[field] for field in self.fields}
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable cache file %s: %s", self.path, error)
            return
        for i, (name, sha) in enumerate(zip(names.tolist(), hashes.tolist())):
            self.records[name] = (sha, {field: column[i] for field, column in columns.items()})
        logger.info("read %d cached records from %s", len(self.records), self.path)

    def get(self, name: str, sha256: str) -> dict | None:
        with self._lock:
            record = self.records.get(name)
        if record is None or record[0] != sha256:
            return None
        return record[1]

    def put(self, name: str, sha256: str, values: dict) -> None:
        with self._lock:
            self.records[name] = (sha256, values)
            self.dirty = True

    def save(self) -> None:
        """Write all records atomically (a temporary file renamed over the old one)."""
        with self._lock:
            if self.path is None or not self.dirty:
                return
            records = dict(self.records)
            self.dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        names = sorted(records)
        arrays = {"names": np.asarray(names, dtype=str),
                  "sha256": np.asarray([records[n][0] for n in names], dtype=str)}
        for field, (shape, dtype) in self.fields.items():
            column = np.empty((len(names), *shape), dtype)
            for i, name in enumerate(names):
                column[i] = records[name][1][field]
            arrays[field] = column
        handle, temporary = tempfile.mkstemp(prefix=".cache-", suffix=".npz", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **arrays)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            with self._lock:
                self.dirty = True
            raise
        self.path.with_suffix(".json").write_text(json.dumps(self.description, indent=2, sort_keys=True))


def _source_sha256(*sources) -> str:
    """Return a digest of the source code of modules and functions, part of every cache key."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(inspect.getsource(source).encode())
    return digest.hexdigest()


def _key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:20]


def detection_description(ir_dir: Path, detector_settings: DetectorSettings) -> dict:
    """Return everything a cached detection depends on."""
    files = convert.read_ir_info(ir_dir)["files"]
    return {
        "kind": "detections",
        "code": _source_sha256(imageio, detect, alignment.choose_face),
        "networks": {name: [files[name]["xml_sha256"], files[name]["bin_sha256"]] for name in ("pnet", "rnet", "onet")},
        "detector": dataclasses.asdict(detector_settings),
    }


def embedding_description(ir_dir: Path, detection: dict, align: AlignSettings, standardization: str,
                          view: str, precision: str) -> dict:
    """Return everything a cached embedding of one view depends on."""
    files = convert.read_ir_info(ir_dir)["files"]
    return {
        "kind": "embeddings",
        "code": _source_sha256(alignment, embed, sys.modules[__name__]),
        "detection": _key(detection),
        "facenet": [files["facenet"]["xml_sha256"], files["facenet"]["bin_sha256"]],
        "align": align.to_json(),
        # The constants that place the similarity template and the no-face centre crop.
        "layout": alignment.FIVE_POINT_LAYOUT.round(6).tolist(),
        "typical_box": list(alignment.TYPICAL_BOX_SIZE),
        "centre_box": list(alignment.CENTRE_BOX),
        "standardization": standardization,
        "view": view,
        "inference_precision": precision,
    }


DETECTION_FIELDS = {
    "faces": ((), np.int32),
    "box": ((4,), np.float32),
    "landmarks": ((5, 2), np.float32),
    "score": ((), np.float32),
}
EMBEDDING_FIELDS = {"embedding": ((convert.EMBEDDING_SIZE,), np.float32)}


@dataclasses.dataclass
class _Prepared:
    """One photo read, hashed and, when an embedding is missing, detected and cropped."""

    name: str
    sha256: str
    detection: dict
    crop: np.ndarray | None
    detected: bool


class PhotoEmbedder:
    """Detector, alignment and Embedder for photo files, with the detection and embedding caches."""

    def __init__(self, ir_dir: Path, align: AlignSettings, embed: EmbedSettings,
                 batch_size: int = 32, cache_dir: Path | None = None, use_cache: bool = True,
                 detector_settings: DetectorSettings | None = None):
        self.ir_dir = Path(ir_dir)
        self.align = align
        self.embed_settings = embed
        self.detector = Detector(self.ir_dir, detector_settings or DetectorSettings())
        # Views are embedded one at a time so each view's cache can be reused on its own.
        self.embedder = Embedder(self.ir_dir, batch_size=batch_size or DEFAULT_BATCH_SIZE,
                                 settings=dataclasses.replace(embed, add_mirrored=False))
        if self.embedder.image_size != align.image_size:
            raise InvalidInputError(
                f"the FaceNet IR takes {self.embedder.image_size} px crops; got image_size {align.image_size}"
            )
        cache_dir = (cache_dir or default_cache_dir()) if use_cache else None
        detection = detection_description(self.ir_dir, self.detector.settings)
        self.detections = _NpzCache(cache_dir / f"detections-{_key(detection)}.npz" if cache_dir else None,
                                    DETECTION_FIELDS, detection)
        self.views = [ORIGINAL, MIRRORED] if embed.add_mirrored else [ORIGINAL]
        self.embeddings = {}
        for view in self.views:
            description = embedding_description(self.ir_dir, detection, align, embed.standardization, view,
                                                self.embedder.precision)
            path = cache_dir / f"embeddings-{_key(description)}.npz" if cache_dir else None
            self.embeddings[view] = _NpzCache(path, EMBEDDING_FIELDS, description)

    def embed_files(self, root: Path, names: list[str], progress=None) -> PhotoEmbeddings:
        """Embed root/name for every name; progress(n) is called as photos finish."""
        root = Path(root)
        wall, cpu = time.perf_counter(), time.process_time()
        counts = {"detected": 0, "embedded": 0}
        done_since_save = 0
        chunks = [names[i : i + CHUNK_PHOTOS] for i in range(0, len(names), CHUNK_PHOTOS)]
        records: dict[str, tuple[str, dict]] = {}
        try:
            # Reading and detecting the next chunk overlaps with embedding the current one;
            # OpenVINO and most NumPy work release the GIL.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeface-detect") as pool:
                pending = pool.submit(self._prepare, root, chunks[0]) if chunks else None
                for k in range(len(chunks)):
                    prepared = pending.result()
                    pending = pool.submit(self._prepare, root, chunks[k + 1]) if k + 1 < len(chunks) else None
                    self._embed_chunk(prepared, counts)
                    for item in prepared:
                        records[item.name] = (item.sha256, item.detection)
                    done_since_save += len(prepared)
                    if done_since_save >= SAVE_EVERY_PHOTOS:
                        self._save()
                        done_since_save = 0
                    if progress:
                        progress(len(prepared))
        finally:
            self._save()
        return self._collect(names, records, counts, time.perf_counter() - wall, time.process_time() - cpu)

    def _save(self) -> None:
        self.detections.save()
        for cache in self.embeddings.values():
            cache.save()

    def _prepare(self, root: Path, names: list[str]) -> list[_Prepared]:
        prepared = []
        for name in names:
            path = root / name
            try:
                data = path.read_bytes()
            except OSError as error:
                raise InvalidInputError(f"cannot read photo {path}: {error}; check the photo folder") from error
            sha = hashlib.sha256(data).hexdigest()
            missing_view = any(self.embeddings[v].get(name, sha) is None for v in self.views)
            detection = self.detections.get(name, sha)
            if detection is not None and not missing_view:
                prepared.append(_Prepared(name, sha, detection, None, False))
                continue
            try:
                image = decode_image(data)
            except KubefaceError as error:
                raise InvalidInputError(f"photo {path} cannot be decoded: {error}") from error
            detected = detection is None
            if detected:
                faces = self.detector.detect(image)
                face = choose_face(faces, image.shape)
                detection = _detection_record(face, len(faces))
                self.detections.put(name, sha, detection)
            face = _face_from_record(detection) if detection["faces"] > 0 else centre_face(image.shape)
            crop = crop_face(image, face, self.align) if missing_view else None
            prepared.append(_Prepared(name, sha, detection, crop, detected))
        return prepared

    def _embed_chunk(self, prepared: list[_Prepared], counts: dict) -> None:
        todo = [item for item in prepared if item.crop is not None]
        counts["detected"] += sum(item.detected for item in prepared)
        if not todo:
            return
        crops = np.stack([item.crop for item in todo])
        for view in self.views:
            cache = self.embeddings[view]
            needed = [i for i, item in enumerate(todo) if cache.get(item.name, item.sha256) is None]
            if not needed:
                continue
            batch = crops[needed] if view == ORIGINAL else mirror(crops[needed])
            vectors = self.embedder.embed(batch)
            counts["embedded"] += len(needed)
            for i, vector in zip(needed, vectors):
                cache.put(todo[i].name, todo[i].sha256, {"embedding": vector})

    def _collect(self, names: list[str], records: dict, counts: dict, seconds: float,
                 cpu_seconds: float) -> PhotoEmbeddings:
        views = []
        for view in self.views:
            cache = self.embeddings[view]
            views.append(np.stack([cache.get(n, records[n][0])["embedding"] for n in names]) if names
                         else np.zeros((0, convert.EMBEDDING_SIZE), np.float32))
        embeddings = combine_mirrored(views[0], views[1]) if len(views) == 2 else views[0]
        return PhotoEmbeddings(
            names=list(names),
            embeddings=embeddings.astype(np.float32),
            no_face=[n for n in names if records[n][1]["faces"] == 0],
            several_faces=[n for n in names if records[n][1]["faces"] > 1],
            detected=counts["detected"],
            embedded=counts["embedded"],
            seconds=seconds,
            cpu_seconds=cpu_seconds,
        )


def _detection_record(face: Face | None, count: int) -> dict:
    if face is None:
        return {"faces": 0, "box": np.full(4, np.nan, np.float32), "landmarks": np.full((5, 2), np.nan, np.float32),
                "score": np.float32(np.nan)}
    return {"faces": count, "box": np.asarray(face.box, np.float32),
            "landmarks": np.asarray(face.landmarks, np.float32), "score": np.float32(face.score)}


def _face_from_record(record: dict) -> Face:
    return Face(box=np.asarray(record["box"], np.float64), score=float(record["score"]),
                landmarks=np.asarray(record["landmarks"], np.float64))
