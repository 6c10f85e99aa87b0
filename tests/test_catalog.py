"""Catalog versions on a local folder and on SeaweedFS: sealing, immutability, resuming, races."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from kubeface import dataset_catalog
from kubeface.catalog import MANIFEST, Catalog
from kubeface.errors import ChecksumError, NotFoundError, VersionExistsError
from kubeface.store import LocalStore, open_store



class Interrupted(Exception):
    """Raised from a progress callback to stop an upload part-way."""


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}


def photo_folder(demo_root: Path, target: Path, people: int = 3, photos: int = 5) -> Path:
    """Copy a few people of the bundled demo photos."""
    for person in sorted(p for p in (demo_root / "dataset").iterdir() if p.is_dir())[:people]:
        (target / person.name).mkdir(parents=True)
        for photo in sorted(person.iterdir())[:photos]:
            shutil.copy2(photo, target / person.name / photo.name)
    return target


def test_publish_fetch_round_trip(store_uri, tmp_path):
    files = {"ir/model.xml": b"<net/>", "ir/model.bin": bytes(range(256)) * 300, "labels.json": b'["a", "b"]'}
    source = make_folder(tmp_path / "source", files)
    catalog = Catalog.open(store_uri)
    version = catalog.publish("models", "demo", source, {"metrics": {"accuracy": 1.0}})
    assert version == "1.0.0"
    assert catalog.versions("models", "demo") == ["1.0.0"]
    assert catalog.names("models") == ["demo"]
    manifest = catalog.manifest("models", "demo", "1.0.0")
    assert [e["path"] for e in manifest["files"]] == sorted(files)
    for entry in manifest["files"]:
        stored = catalog.store.read_bytes(f"models/demo/1.0.0/{entry['path']}")
        assert hashlib.sha256(stored).hexdigest() == entry["sha256"]
        assert len(stored) == entry["size"]
        assert stored == files[entry["path"]]
    fetched = catalog.fetch("models", "demo", "1.0.0", destination=tmp_path / "fetched")
    assert folder_bytes(fetched) == files


def test_next_versions_count_up(store_uri, tmp_path):
    source = make_folder(tmp_path / "source", {"a.txt": b"a"})
    catalog = Catalog.open(store_uri)
    published = [catalog.publish("models", "demo", source, {}) for _ in range(3)]
    assert published == ["1.0.0", "1.0.1", "1.0.2"]


def test_existing_version_is_immutable(store_uri, tmp_path):
    first = make_folder(tmp_path / "first", {"a.txt": b"first"})
    second = make_folder(tmp_path / "second", {"a.txt": b"second"})
    catalog = Catalog.open(store_uri)
    catalog.publish("datasets", "faces", first, {}, version="2.0.0")
    with pytest.raises(VersionExistsError) as caught:
        catalog.publish("datasets", "faces", second, {}, version="2.0.0")
    assert "faces version 2.0.0 already exists" in str(caught.value)
    assert "immutable" in str(caught.value)
    assert catalog.store.read_bytes("datasets/faces/2.0.0/a.txt") == b"first"


def test_unsealed_version_is_invisible(store_uri, tmp_path):
    catalog = Catalog.open(store_uri)
    catalog.store.write_bytes("datasets/faces/.claims/1.0.0", b"{}")
    catalog.store.write_bytes("datasets/faces/1.0.0/Alice/1.jpg", b"partial")
    assert catalog.versions("datasets", "faces") == []
    assert catalog.names("datasets") == []
    with pytest.raises(NotFoundError) as caught:
        catalog.manifest("datasets", "faces", "1.0.0")
    assert "no manifest.json" in str(caught.value)
    with pytest.raises(NotFoundError):
        dataset_catalog.resolve(f"{catalog.store.uri}/datasets/faces/1.0.0")


def test_fetch_rejects_altered_object(store_uri, tmp_path):
    source = make_folder(tmp_path / "source", {"w.bin": b"weights" * 100})
    catalog = Catalog.open(store_uri)
    catalog.publish("models", "demo", source, {})
    catalog.store.write_bytes("models/demo/1.0.0/w.bin", b"tampered" * 100)
    with pytest.raises(ChecksumError) as caught:
        catalog.fetch("models", "demo", "1.0.0", destination=tmp_path / "fetched")
    assert "w.bin" in str(caught.value)
    assert not (tmp_path / "fetched").exists()


def test_concurrent_publishes_get_distinct_versions(store_uri, tmp_path):
    publishers = 4
    folders = [make_folder(tmp_path / f"p{i}", {"owner.txt": f"publisher {i}".encode(), "w.bin": bytes([i]) * 5000})
               for i in range(publishers)]
    barrier = threading.Barrier(publishers)
    versions: list[str | None] = [None] * publishers
    errors = []

    def publish(index: int) -> None:
        catalog = Catalog(open_store(store_uri))  # one client per publisher, as in separate pods
        barrier.wait()
        try:
            versions[index] = catalog.publish("models", "shared", folders[index], {"publisher": index})
        except Exception as error:  # noqa: BLE001 - reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(publishers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(versions) == ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]
    catalog = Catalog.open(store_uri)
    for index, version in enumerate(versions):
        manifest = catalog.manifest("models", "shared", version)
        assert manifest["metadata"] == {"publisher": index}
        fetched = catalog.fetch("models", "shared", version, destination=tmp_path / "fetched" / version)
        assert folder_bytes(fetched) == folder_bytes(folders[index])


def test_interrupted_push_resumes_missing_only(store_uri, tmp_path, demo_root):
    photos = photo_folder(demo_root, tmp_path / "photos")
    sent = []

    def stop_after_six(path: str, action: str) -> None:
        sent.append(path)
        if len(sent) == 6:
            raise Interrupted()

    with pytest.raises(Interrupted):
        dataset_catalog.push(photos, "faces", "1.0.0", store_uri, progress=stop_after_six)
    catalog = Catalog.open(store_uri)
    assert catalog.versions("datasets", "faces") == []
    present = {key.split("/", 3)[3] for key in catalog.store.list("datasets/faces/1.0.0/")}
    assert len(present) >= 6
    result = dataset_catalog.push(photos, "faces", "1.0.0", store_uri)
    assert result.present == len(present)
    assert result.uploaded == 15 - len(present)
    assert result.people == {name: 5 for name in sorted(p.name for p in photos.iterdir())}
    fetched = catalog.fetch("datasets", "faces", "1.0.0", destination=tmp_path / "fetched")
    assert folder_bytes(fetched) == folder_bytes(photos)


def test_unfinished_push_of_other_files_is_rejected(store_uri, tmp_path, demo_root):
    first = photo_folder(demo_root, tmp_path / "first", people=2, photos=3)
    second = photo_folder(demo_root, tmp_path / "second", people=3, photos=2)

    def interrupt(path: str, action: str) -> None:
        raise Interrupted()

    with pytest.raises(Interrupted):
        dataset_catalog.push(first, "faces", "1.0.0", store_uri, progress=interrupt)
    with pytest.raises(VersionExistsError) as caught:
        dataset_catalog.push(second, "faces", "1.0.0", store_uri)
    assert "has an unfinished upload of other files" in str(caught.value)
    assert "--replace-unfinished" in str(caught.value)
    result = dataset_catalog.push(second, "faces", "1.0.0", store_uri, replace_unfinished=True)
    assert result.uploaded == 6
    catalog = Catalog.open(store_uri)
    fetched = catalog.fetch("datasets", "faces", "1.0.0", destination=tmp_path / "fetched")
    assert folder_bytes(fetched) == folder_bytes(second)


def test_push_uploads_photos_only(store_uri, tmp_path, demo_root):
    photos = photo_folder(demo_root, tmp_path / "photos", people=2, photos=2)
    (photos / "notes.txt").write_text("not a photo")
    first_person = sorted(photos.iterdir())[0]
    (first_person / ".DS_Store").write_bytes(b"\0\1")
    (first_person / "caption.txt").write_text("caption")
    result = dataset_catalog.push(photos, "faces", "1.0.0", store_uri)
    manifest = Catalog.open(store_uri).manifest("datasets", "faces", "1.0.0")
    assert [e["path"] for e in manifest["files"]] == sorted(
        p.relative_to(photos).as_posix() for p in photos.glob("*/*.jpg"))
    assert sorted(item["path"] for item in result.skipped) == sorted(
        ["notes.txt", f"{first_person.name}/.DS_Store", f"{first_person.name}/caption.txt"])
    assert manifest["metadata"]["skipped"] == result.skipped
    assert manifest["metadata"]["photos_per_person"] == {p.name: 2 for p in sorted(photos.iterdir()) if p.is_dir()}


def test_dataset_uri_resolves_to_verified_copy(store_uri, tmp_path, demo_root):
    photos = photo_folder(demo_root, tmp_path / "photos", people=2, photos=2)
    pushed = dataset_catalog.push(photos, "faces", "1.2.3", store_uri)
    folder, identity = dataset_catalog.resolve(pushed.uri)
    assert folder_bytes(folder) == folder_bytes(photos)
    assert identity["name"] == "faces"
    assert identity["version"] == "1.2.3"
    manifest = Catalog.open(store_uri).manifest("datasets", "faces", "1.2.3")
    assert identity["digest"] == hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def test_local_unfinished_folder_not_used_as_dataset(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.write_bytes("datasets/faces/.claims/1.0.0", b"{}")
    store.write_bytes("datasets/faces/1.0.0/Alice/1.jpg", b"partial")
    with pytest.raises(NotFoundError) as caught:
        dataset_catalog.resolve(str(tmp_path / "store" / "datasets" / "faces" / "1.0.0"))
    assert "unfinished" in str(caught.value)


def test_push_skips_files_that_are_not_images(tmp_path, demo_root):
    from kubeface import dataset_catalog

    folder = tmp_path / "photos"
    for person in ("Colin_Powell", "Laura_Bush"):
        shutil.copytree(demo_root / "dataset" / person, folder / person)
    (folder / "Laura_Bush" / "notes.jpg").write_text("not a photo")
    (folder / "Laura_Bush" / "empty.jpg").write_bytes(b"")
    result = dataset_catalog.push(folder, "checked", "1.0.0", str(tmp_path / "store"))
    assert result.people == {"Colin_Powell": 15, "Laura_Bush": 15}
    skipped = {item["path"]: item["reason"] for item in result.skipped}
    assert sorted(skipped) == ["Laura_Bush/empty.jpg", "Laura_Bush/notes.jpg"]
    assert all(reason.startswith("not a readable image") for reason in skipped.values())
    keys = LocalStore(tmp_path / "store").list("datasets/checked/1.0.0/Laura_Bush/")
    assert len(keys) == 15
