"""The store's cache of aligned crops and embeddings: keys, entries, damaged objects."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kubeface import facecache
from kubeface.align import AlignSettings
from kubeface.detect import DetectorSettings
from kubeface.facecache import ALIGNED, NO_FACE, CachedFace, FaceCache

IR_INFO = {
    "files": {
        name: {"xml_sha256": f"{name}-xml", "bin_sha256": f"{name}-bin"}
        for name in ("facenet", "pnet", "rnet", "onet")
    }
}
PHOTO = hashlib.sha256(b"photo").hexdigest()


def entry(seed: int = 0) -> CachedFace:
    rng = np.random.default_rng(seed)
    embedding = rng.normal(size=512).astype(np.float32)
    return CachedFace(
        status=ALIGNED,
        faces=2,
        box=[10.0, 20.0, 110.0, 140.0],
        score=0.99,
        crop=rng.integers(0, 256, (160, 160, 3), dtype=np.uint8),
        embedding=embedding / np.linalg.norm(embedding),
    )


@pytest.fixture(params=["local", "s3"])
def cache(request, tmp_path) -> FaceCache:
    """A face cache in a local folder store, and in an S3 store on the loopback SeaweedFS server."""
    if request.param == "local":
        uri = str(tmp_path / "store")
    else:
        uri = request.getfixturevalue("s3_env").store_uri()
    return FaceCache.open(uri, "", IR_INFO, AlignSettings(), DetectorSettings())


def test_entry_round_trip(cache):
    written = entry()
    cache.put(PHOTO, written)
    read = cache.get(PHOTO)
    assert read.status == ALIGNED
    assert read.faces == 2
    assert read.box == written.box
    assert read.score == 0.99
    assert np.array_equal(read.crop, written.crop)
    assert np.array_equal(read.embedding, written.embedding)
    assert (cache.hits, cache.misses, cache.written) == (1, 0, 1)


def test_no_face_entry_round_trip(cache):
    cache.put(PHOTO, CachedFace(status=NO_FACE, faces=0))
    read = cache.get(PHOTO)
    assert read.status == NO_FACE
    assert read.crop is None
    assert read.embedding is None
    assert read.row_fields() == {"status": NO_FACE, "faces": 0, "reason": "no face detected"}


def test_missing_entry_is_a_miss(cache):
    assert cache.get(PHOTO) is None
    assert (cache.hits, cache.misses) == (0, 1)


def test_object_key_layout(cache):
    cache.put(PHOTO, entry())
    key = f"cache/faces/{cache.namespace}/{PHOTO[:2]}/{PHOTO}.npz"
    assert cache.object_key(PHOTO) == key
    assert cache.store.exists(key)


def test_damaged_entry_is_a_miss(cache):
    cache.put(PHOTO, entry())
    key = cache.object_key(PHOTO)
    data = bytearray(cache.store.read_bytes(key))
    data[len(data) // 2] ^= 0xFF
    cache.store.write_bytes(key, bytes(data))
    assert cache.get(PHOTO) is None
    assert cache.misses == 1


def test_entry_of_other_photo_rejected(cache):
    other = hashlib.sha256(b"other").hexdigest()
    cache.store.write_bytes(cache.object_key(PHOTO), facecache.encode_entry(other, cache.namespace, entry()))
    assert cache.get(PHOTO) is None


def test_altered_embedding_rejected(cache):
    data = facecache.encode_entry(PHOTO, cache.namespace, entry())
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        crop, meta = arrays["crop"], arrays["meta"]
    buffer = io.BytesIO()
    np.savez(buffer, crop=crop, embedding=entry(seed=1).embedding, meta=meta)
    with pytest.raises(ValueError, match="do not match their recorded sha256"):
        facecache.decode_entry(buffer.getvalue(), PHOTO, cache.namespace, 160)


def test_namespace_follows_settings():
    base = facecache.namespace(IR_INFO, AlignSettings(), DetectorSettings())
    assert base == facecache.namespace(IR_INFO, AlignSettings(), DetectorSettings())
    assert base != facecache.namespace(IR_INFO, AlignSettings(margin=44), DetectorSettings())
    assert base != facecache.namespace(IR_INFO, AlignSettings(), DetectorSettings(min_face_size=40))
    changed = {"files": {**IR_INFO["files"], "facenet": {"xml_sha256": "facenet-xml", "bin_sha256": "other"}}}
    assert base != facecache.namespace(changed, AlignSettings(), DetectorSettings())


def test_reopen_finds_same_entries(cache):
    cache.put(PHOTO, entry())
    again = FaceCache.reopen(cache.describe())
    assert again.namespace == cache.namespace
    assert np.array_equal(again.get(PHOTO).embedding, entry().embedding)
