"""Dataset versions in the catalog, and the resolution of a dataset URI to a local folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kubeface import datasets
from kubeface.catalog import MANIFEST, Catalog, file_entries, parse_version
from kubeface.errors import DatasetError, InvalidInputError


def folder_digest(root: Path) -> str:
    """Return a sha256 over the sorted relative paths and sha256s of a folder's files."""
    digest = hashlib.sha256()
    for entry in file_entries(root):
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


def split_dataset_uri(uri: str) -> tuple[str, str, str] | None:
    """Split "<store>/datasets/<name>/<version>" into its parts, or None for a plain folder."""
    head, sep, tail = uri.rstrip("/").rpartition("/datasets/")
    parts = tail.split("/")
    if not sep or len(parts) != 2:
        return None
    try:
        parse_version(parts[1])
    except InvalidInputError:
        return None
    return head or "/", parts[0], parts[1]


def resolve(uri: str, s3_endpoint: str | None = None) -> tuple[Path, dict]:
    """Return a local folder for a dataset URI or path, and the dataset's identity.

    A catalog URI is downloaded with every checksum verified; its identity carries the name,
    version and the manifest's digest. A plain folder is identified by the digest of its files.
    """
    plain = Path(uri.removeprefix("file://")).expanduser()
    parts = split_dataset_uri(uri)
    if parts is None or (plain.is_dir() and not (plain / MANIFEST).is_file() and "://" not in uri.removeprefix("file://")):
        if "://" in uri.removeprefix("file://"):
            raise DatasetError(f"invalid dataset URI {uri!r}: expected STORE/datasets/NAME/VERSION")
        if not plain.is_dir():
            raise DatasetError(f"dataset folder {plain} does not exist; pass a folder <root>/<person>/<photo> or a dataset URI")
        return plain.resolve(), {"uri": str(plain.resolve()), "digest": folder_digest(plain)}
    store_uri, name, version = parts
    catalog = Catalog.open(store_uri, s3_endpoint)
    manifest = catalog.manifest("datasets", name, version)
    folder = catalog.fetch("datasets", name, version)
    manifest_digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return folder, {"uri": uri, "name": name, "version": version, "digest": manifest_digest}


def push(folder: Path, name: str, version: str, store_uri: str | None = None, s3_endpoint: str | None = None) -> str:
    """Upload a photo folder as an immutable dataset version; returns its URI."""
    parse_version(version)
    photos, skipped = datasets.scan_folder(Path(folder), datasets.TRAIN)
    people = sorted({p.person for p in photos})
    catalog = Catalog.open(store_uri, s3_endpoint)
    metadata = {"people": people, "photos": len(photos), "skipped": [s.to_json() for s in skipped]}
    catalog.publish("datasets", name, Path(folder), metadata, version=version)
    return catalog.store.child_uri(f"datasets/{name}/{version}")
