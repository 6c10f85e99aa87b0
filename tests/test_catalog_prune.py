"""Pruning abandoned uploads from the catalog, on a local folder and on SeaweedFS."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from kubeface.catalog import Catalog
from kubeface.cli import main
from kubeface.errors import StoreError, VersionExistsError

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)


class Interrupted(Exception):
    """Raised from a progress callback to stop an upload part-way."""


def make_folder(root: Path, count: int) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        (root / f"file{i}.bin").write_bytes(bytes([i]) * 100)
    return root


def stop_after(count: int):
    """Return a progress callback that raises Interrupted when the count-th file is done."""
    done = []

    def progress(path: str, action: str) -> None:
        done.append(path)
        if len(done) == count:
            raise Interrupted()

    return progress


def abandon(catalog: Catalog, source: Path, started: str, after: int = 2) -> str:
    """Start publishing source as the next model version, stop after a few files, and backdate the claim."""
    with pytest.raises(Interrupted):
        catalog.publish("models", "demo", source, {}, progress=stop_after(after))
    version = catalog.versions("models", "demo", sealed_only=False)[-1]
    claim_key = catalog.claim_key("models", "demo", version)
    claim = json.loads(catalog.store.read_bytes(claim_key))
    catalog.store.write_bytes(claim_key, json.dumps({**claim, "started": started}).encode())
    return version


def objects(catalog: Catalog, version: str) -> list[str]:
    return catalog.store.list(f"models/demo/{version}/")


def test_old_abandoned_upload_pruned(store_uri, tmp_path):
    catalog = Catalog.open(store_uri)
    source = make_folder(tmp_path / "source", 6)
    assert catalog.publish("models", "demo", source, {}) == "1.0.0"
    abandoned = abandon(catalog, source, "2026-12-01T12:00:00+00:00")
    assert abandoned == "1.0.1"
    assert len(objects(catalog, "1.0.1")) >= 2

    rows = catalog.prune_unfinished("models", "demo", dt.timedelta(hours=24), now=NOW)
    assert [(r["version"], r["action"]) for r in rows] == [("1.0.1", "pruned")]
    assert objects(catalog, "1.0.1") == []
    # The sealed version is untouched and the pruned number is not given out again.
    assert len(objects(catalog, "1.0.0")) == 7
    assert catalog.publish("models", "demo", source, {}) == "1.0.2"
    again = catalog.prune_unfinished("models", "demo", dt.timedelta(hours=24), now=NOW)
    assert [(r["version"], r["action"]) for r in again] == [("1.0.1", "already pruned")]


def test_recent_upload_kept(store_uri, tmp_path):
    catalog = Catalog.open(store_uri)
    source = make_folder(tmp_path / "source", 4)
    version = abandon(catalog, source, "2026-12-04T06:00:00+00:00")
    before = sorted(objects(catalog, version))
    rows = catalog.prune_unfinished("models", "demo", dt.timedelta(hours=24), now=NOW)
    assert rows[0]["action"] == "kept"
    assert "less than 1 day" in rows[0]["reason"]
    assert sorted(objects(catalog, version)) == before


def test_dry_run_deletes_nothing(store_uri, tmp_path):
    catalog = Catalog.open(store_uri)
    source = make_folder(tmp_path / "source", 4)
    version = abandon(catalog, source, "2026-11-01T00:00:00+00:00")
    before = sorted(objects(catalog, version))
    rows = catalog.prune_unfinished("models", "demo", dt.timedelta(hours=1), dry_run=True, now=NOW)
    assert [(r["version"], r["action"], r["objects"]) for r in rows] == [(version, "would prune", len(before))]
    assert sorted(objects(catalog, version)) == before


def test_claim_without_start_time_kept(tmp_path):
    catalog = Catalog.open(str(tmp_path / "store"))
    catalog.store.write_bytes("models/demo/.claims/1.0.0", b"{}")
    catalog.store.write_bytes("models/demo/1.0.0/a.bin", b"partial")
    rows = catalog.prune_unfinished("models", "demo", dt.timedelta(0), now=NOW)
    assert rows[0]["action"] == "kept"
    assert rows[0]["reason"] == "its claim records no start time"
    assert objects(catalog, "1.0.0") == ["models/demo/1.0.0/a.bin"]


def test_publisher_pruned_midway_does_not_seal(tmp_path):
    catalog = Catalog.open(str(tmp_path / "store"))
    source = make_folder(tmp_path / "source", 6)
    sent = []

    def prune_during_upload(path: str, action: str) -> None:
        sent.append(path)
        if len(sent) == 3:
            # Another operator prunes the version while this publisher is still uploading.
            catalog.prune_unfinished("models", "demo", dt.timedelta(0))

    with pytest.raises(StoreError) as caught:
        catalog.publish("models", "demo", source, {}, progress=prune_during_upload)
    assert "was pruned as abandoned while this upload ran" in str(caught.value)
    assert catalog.versions("models", "demo") == []


def test_explicit_version_published_again_after_prune(tmp_path):
    catalog = Catalog.open(str(tmp_path / "store"))
    source = make_folder(tmp_path / "source", 5)
    with pytest.raises(Interrupted):
        catalog.publish("datasets", "faces", source, {}, version="2.0.0", progress=stop_after(2))
    catalog.prune_unfinished("datasets", "faces", dt.timedelta(0))
    assert catalog.store.list("datasets/faces/2.0.0/") == []
    assert catalog.publish("datasets", "faces", source, {}, version="2.0.0") == "2.0.0"
    fetched = catalog.fetch("datasets", "faces", "2.0.0", destination=tmp_path / "fetched")
    assert sorted(p.name for p in fetched.iterdir() if p.name != "manifest.json") == [f"file{i}.bin" for i in range(5)]


def test_prune_removes_partial_write_on_folder_store(tmp_path):
    catalog = Catalog.open(str(tmp_path / "store"))
    source = make_folder(tmp_path / "source", 4)
    version = abandon(catalog, source, "2026-11-01T00:00:00+00:00")
    folder = tmp_path / "store" / "models" / "demo" / version
    # What a publisher killed inside a write leaves: a temporary file the store does not list.
    (folder / "deep").mkdir()
    (folder / "deep" / ".write-abc123").write_bytes(b"half")
    catalog.prune_unfinished("models", "demo", dt.timedelta(hours=1), now=NOW)
    assert not folder.exists()
    assert (tmp_path / "store" / "models" / "demo" / ".claims" / version).is_file()


def test_pruned_version_of_other_files_needs_replace(tmp_path):
    catalog = Catalog.open(str(tmp_path / "store"))
    first = make_folder(tmp_path / "first", 4)
    second = make_folder(tmp_path / "second", 6)
    with pytest.raises(Interrupted):
        catalog.publish("datasets", "faces", first, {}, version="1.0.0", progress=stop_after(1))
    catalog.prune_unfinished("datasets", "faces", dt.timedelta(0))
    with pytest.raises(VersionExistsError, match="pass --replace-unfinished"):
        catalog.publish("datasets", "faces", second, {}, version="1.0.0")
    assert catalog.publish("datasets", "faces", second, {}, version="1.0.0", replace_unfinished=True) == "1.0.0"
    assert len(catalog.manifest("datasets", "faces", "1.0.0")["files"]) == 6


def run(capsys, *arguments) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prune_lists_then_prunes(tmp_path, capsys):
    store = str(tmp_path / "store")
    catalog = Catalog.open(store)
    source = make_folder(tmp_path / "source", 4)
    version = abandon(catalog, source, "2026-01-01T00:00:00+00:00")
    command = ["model", "prune", "demo", "--store", store, "--older-than", "24"]

    code, out, _ = run(capsys, *command, "--dry-run", "--json")
    assert code == 0
    assert [(r["version"], r["action"]) for r in json.loads(out)] == [(version, "would prune")]
    assert objects(catalog, version) != []

    code, out, _ = run(capsys, *command)
    assert code == 0
    assert out.splitlines()[0].split() == ["VERSION", "OBJECTS", "ACTION", "REASON"]
    assert out.splitlines()[1].split()[:3] == [version, "2", "pruned"]
    assert objects(catalog, version) == []


def test_cli_prune_rejects_negative_age(tmp_path, capsys):
    code, _, err = run(capsys, "model", "prune", "demo", "--store", str(tmp_path / "store"), "--older-than", "-1")
    assert code != 0
    assert "invalid --older-than -1.0: expected hours from 0 to 878400" in err


@pytest.mark.parametrize("hours", ["inf", "nan", "1e20"])
def test_cli_prune_rejects_unbounded_age(tmp_path, capsys, hours):
    code, _, err = run(capsys, "model", "prune", "demo", "--store", str(tmp_path / "store"), "--older-than", hours)
    assert code == 2
    assert f"invalid --older-than {float(hours)}" in err
