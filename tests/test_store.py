"""The Store contract, run against the local directory and a real SeaweedFS server.

"s3-listing" is the same server with conditional writes turned off, so exclusive creates go
through the listing protocol that servers without If-None-Match get.
"""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from kubeface.errors import InvalidInputError, NotFoundError
from kubeface.store import LocalStore, open_store

BACKENDS = ["local", "s3", "s3-listing"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path, monkeypatch):
    """A fresh, empty store of each backend."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    server = request.getfixturevalue("s3_env")
    if request.param == "s3-listing":
        monkeypatch.setenv("KUBEFACE_S3_CONDITIONAL_WRITES", "off")
    return open_store(server.store_uri())


def test_bytes_round_trip(store):
    data = bytes(range(256)) * 40
    store.write_bytes("a/b/c.bin", data)
    assert store.read_bytes("a/b/c.bin") == data
    assert store.exists("a/b/c.bin")
    assert not store.exists("a/b/missing.bin")


def test_write_replaces_object(store):
    store.write_bytes("k.txt", b"first")
    store.write_bytes("k.txt", b"second version")
    assert store.read_bytes("k.txt") == b"second version"


def test_read_missing_raises_not_found(store):
    with pytest.raises(NotFoundError) as caught:
        store.read_bytes("nothing/here.json")
    assert "nothing/here.json" in str(caught.value)


def test_list_is_recursive_sorted_and_prefix_bound(store):
    for key in ("m/2/x.jpg", "m/1.jpg", "m/10.jpg", "mm/1.jpg", "n.jpg"):
        store.write_bytes(key, key.encode())
    assert store.list("m/") == ["m/1.jpg", "m/10.jpg", "m/2/x.jpg"]
    assert store.list("mm/") == ["mm/1.jpg"]
    assert store.list("zz/") == []


def test_delete_removes_and_tolerates_missing(store):
    store.write_bytes("d/x", b"1")
    store.delete("d/x")
    store.delete("d/x")
    assert not store.exists("d/x")
    assert store.list("d/") == []


def test_file_upload_download_exact_bytes(store, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    store.upload_file("files/source.bin", source, expected)
    assert store.object_sha256("files/source.bin") == expected
    target = tmp_path / "out" / "copy.bin"
    store.download_file("files/source.bin", target)
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]


def test_object_sha256_of_missing_is_none(store):
    assert store.object_sha256("absent.bin") is None


def test_invalid_keys_rejected(store):
    for key in ("../escape", "/absolute", "a//b", "a/./b", ""):
        with pytest.raises(InvalidInputError):
            store.write_bytes(key, b"x")


def test_create_exclusive_keeps_first(store):
    assert store.create_exclusive("v/claim", b"first")
    assert not store.create_exclusive("v/claim", b"second")
    assert store.read_bytes("v/claim") == b"first"


def test_create_exclusive_race_has_one_winner(store):
    writers = 6
    for round_index in range(3):
        key = f"race/{round_index}/manifest.json"
        barrier = threading.Barrier(writers)
        results = [None] * writers

        def write(index: int) -> None:
            barrier.wait()
            results[index] = store.create_exclusive(key, f"writer {index}".encode())

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [i for i, won in enumerate(results) if won]
        assert len(winners) == 1, f"round {round_index}: winners {winners}"
        assert store.read_bytes(key) == f"writer {winners[0]}".encode()


def test_local_objects_readable_by_others(tmp_path):
    # Files of a local store are read by other users (a serving container), so they keep the
    # mode a plain open() gives under the umask instead of a temporary file's 0600.
    import os
    import stat

    from kubeface.store import LocalStore

    previous = os.umask(0o022)
    try:
        store = LocalStore(tmp_path)
        store.write_bytes("a/written.bin", b"x")
        source = tmp_path / "source.bin"
        source.write_bytes(b"y")
        store.upload_file("a/uploaded.bin", source)
        assert store.create_exclusive("a/exclusive.bin", b"z")
        store.download_file("a/written.bin", tmp_path / "out" / "downloaded.bin")
    finally:
        os.umask(previous)
    for path in (tmp_path / "a" / "written.bin", tmp_path / "a" / "uploaded.bin", tmp_path / "a" / "exclusive.bin",
                 tmp_path / "out" / "downloaded.bin"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
