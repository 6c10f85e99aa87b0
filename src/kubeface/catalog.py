"""Versioned models (and datasets) in a store, each version sealed by a manifest written last.

Layout: <store>/<kind>/<name>/<version>/ (kind "models" or "datasets") with manifest.json
listing every file's relative path, sha256 and size, and <store>/<kind>/<name>/.claims/<version>
created exclusively by the one publisher of that version. The manifest is written last: a
version without it does not exist for readers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

from kubeface.errors import (
    ChecksumError,
    InvalidInputError,
    ModelError,
    NotFoundError,
    StoreError,
    VersionExistsError,
)
from kubeface.store import Store, new_folder, open_store

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# A version is claimed by an object <kind>/<name>/.claims/<version>, outside the version's
# folder so that the folder contains exactly the published files and the manifest.
CLAIMS = ".claims"
LEGACY_CLAIM = ".claim"
MANIFEST_FORMAT = 1
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
VERSION_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
FIRST_VERSION = "1.0.0"
MAX_CLAIM_ATTEMPTS = 50

ProgressCallback = Callable[[str, str], None]


def check_name(name: str, what: str = "model") -> str:
    """Accept lowercase names of letters, digits, '.', '_' and '-' (as Kubernetes does)."""
    if not NAME_PATTERN.match(name or ""):
        raise InvalidInputError(
            f"invalid {what} name {name!r}: use 1-63 lowercase letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def parse_version(version: str) -> tuple[int, int, int]:
    """Split "X.Y.Z" into integers; raises InvalidInputError for anything else."""
    match = VERSION_PATTERN.match(version or "")
    if not match:
        raise InvalidInputError(f"invalid version {version!r}: expected X.Y.Z, for example 1.0.0")
    return tuple(int(part) for part in match.groups())


def next_version(versions: list[str]) -> str:
    """Return the patch version after the highest one, or 1.0.0 for none."""
    if not versions:
        return FIRST_VERSION
    major, minor, patch = max(parse_version(v) for v in versions)
    return f"{major}.{minor}.{patch + 1}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe_file(folder: Path, relative: str) -> dict:
    """Return {path, sha256, size} of one file under folder."""
    from kubeface.weights import sha256_file

    path = Path(folder) / relative
    return {"path": relative, "sha256": sha256_file(path), "size": path.stat().st_size}


def file_entries(folder: Path) -> list[dict]:
    """Describe every file under folder as {path, sha256, size}, sorted by path."""
    return [describe_file(folder, path.relative_to(folder).as_posix())
            for path in sorted(Path(folder).rglob("*")) if path.is_file() and path.name != MANIFEST]


def entries_digest(entries: list[dict]) -> str:
    """Return a sha256 over the paths and sha256s of manifest entries."""
    digest = hashlib.sha256()
    for entry in entries:
        # surrogateescape keeps file names that are not UTF-8 exact instead of failing.
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def parse_manifest(data: bytes, where: str) -> dict:
    """Decode a manifest.json; a damaged one raises ModelError naming where it was read from."""
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise ModelError(f"{where} is not valid JSON ({error}); this version is damaged, so publish or "
                         "push it again under a new version") from error
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ModelError(f"{where} has no list of files; this version is damaged, so publish or push it "
                         "again under a new version")
    return manifest


def _parse_time(text) -> dt.datetime | None:
    """Return an aware datetime from an ISO time written by utc_now; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


class Catalog:
    """Models and datasets of one store."""

    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def open(cls, uri: str | None = None, s3_endpoint: str | None = None) -> "Catalog":
        return cls(open_store(uri, s3_endpoint))

    def _prefix(self, kind: str, name: str, version: str | None = None) -> str:
        check_name(name, kind[:-1])
        prefix = f"{kind}/{name}"
        if version is not None:
            parse_version(version)
            prefix += f"/{version}"
        return prefix

    def versions(self, kind: str, name: str, sealed_only: bool = True) -> list[str]:
        """Return the versions of one model or dataset, oldest first.

        With sealed_only, versions without a manifest (unfinished or abandoned) are left out.
        """
        prefix = self._prefix(kind, name) + "/"
        found = set()
        for key in self.store.list(prefix):
            parts = key[len(prefix):].split("/")
            if len(parts) != 2:
                continue
            if parts[0] == CLAIMS and VERSION_PATTERN.match(parts[1]) and not sealed_only:
                found.add(parts[1])
            elif VERSION_PATTERN.match(parts[0]):
                if parts[1] == MANIFEST or (not sealed_only and parts[1] == LEGACY_CLAIM):
                    found.add(parts[0])
        return sorted(found, key=parse_version)

    def claim_key(self, kind: str, name: str, version: str) -> str:
        """Return the key of the object that claims a version for one publisher."""
        parse_version(version)
        return f"{self._prefix(kind, name)}/{CLAIMS}/{version}"

    def names(self, kind: str) -> list[str]:
        """Return the names that have at least one sealed version."""
        names = set()
        for key in self.store.list(f"{kind}/"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == MANIFEST:
                names.add(parts[1])
        return sorted(names)

    def manifest(self, kind: str, name: str, version: str) -> dict:
        """Read a version's manifest; raises NotFoundError for an unsealed or missing version."""
        key = f"{self._prefix(kind, name, version)}/{MANIFEST}"
        try:
            data = self.store.read_bytes(key)
        except NotFoundError as error:
            raise NotFoundError(
                f"{kind[:-1]} {name} version {version} not found in {self.store.uri} "
                f"(no {MANIFEST}); list versions with: kubeface {kind[:-1]} list"
            ) from error
        return parse_manifest(data, f"{self.store.uri}/{key}")

    def publish(self, kind: str, name: str, folder: Path, metadata: dict, version: str | None = None,
                files: list[str] | None = None, progress: ProgressCallback | None = None,
                replace_unfinished: bool = False) -> str:
        """Upload files of folder as a new version and seal it with the manifest; returns the version.

        files lists the relative paths to upload (default: every file under folder). Without
        version, the next patch version is claimed with an exclusive create, so two publishers
        at once get two different versions. With a version, it must not be sealed yet. An
        unfinished upload of the same files is resumed: objects whose recorded sha256 matches
        are not sent again. One of other files is an error, unless replace_unfinished discards it.
        progress(path, action) is called per file with action "uploaded" or "present".
        """
        folder = Path(folder)
        entries = file_entries(folder) if files is None else [describe_file(folder, path) for path in sorted(files)]
        claim = json.dumps({"files_sha256": entries_digest(entries), "started": utc_now()}).encode()
        explicit = version is not None
        if not explicit:
            version, resuming = self._claim_next(kind, name, claim), False
        else:
            resuming = self._claim(kind, name, version, claim, replace_unfinished)
        prefix = self._prefix(kind, name, version)
        try:
            self._upload(prefix, folder, entries, resuming, progress)
        except StoreError as error:
            advice = ("run the same command again to upload only the missing files" if explicit
                      else "publishing again claims a new version")
            raise StoreError(f"{error}; {kind[:-1]} {name} version {version} is unfinished, so readers do not "
                             f"see it; {advice}") from error
        manifest = {
            "format": MANIFEST_FORMAT,
            "kind": kind[:-1],
            "name": name,
            "version": version,
            "created": utc_now(),
            "files": entries,
            "metadata": metadata,
        }
        data = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
        if self._read_claim(kind, name, version).get("pruned"):
            raise StoreError(
                f"{kind[:-1]} {name} version {version} in {self.store.uri} was pruned as abandoned while this "
                "upload ran, so its files may be gone. It is not sealed: publish again"
            )
        if not self.store.create_exclusive(f"{prefix}/{MANIFEST}", data):
            raise_exists(kind, name, version, self.store.uri)
        logger.info("published %s %s version %s to %s", kind[:-1], name, version, self.store.uri)
        return version

    def _claim(self, kind: str, name: str, version: str, claim: bytes, replace_unfinished: bool) -> bool:
        """Claim an explicit version; returns True when resuming an unfinished upload of the same files."""
        prefix = self._prefix(kind, name, version)
        claim_key = self.claim_key(kind, name, version)
        if self.store.exists(f"{prefix}/{MANIFEST}"):
            raise_exists(kind, name, version, self.store.uri)
        if self.store.create_exclusive(claim_key, claim):
            return False
        if self.store.exists(f"{prefix}/{MANIFEST}"):
            raise_exists(kind, name, version, self.store.uri)
        existing = self._read_claim(kind, name, version)
        same_files = existing.get("files_sha256") == json.loads(claim)["files_sha256"]
        if existing.get("pruned") and (same_files or replace_unfinished):
            # Its files are gone: upload everything again under a fresh claim.
            logger.info("claiming %s %s version %s again after it was pruned", kind[:-1], name, version)
            self.store.write_bytes(claim_key, claim)
            return False
        if same_files:
            logger.info("resuming the unfinished %s %s version %s started %s", kind[:-1], name, version,
                        existing.get("started", "earlier"))
            return True
        if not replace_unfinished:
            raise VersionExistsError(
                f"{kind[:-1]} {name} version {version} in {self.store.uri} has an unfinished upload of other "
                f"files (started {existing.get('started', 'at an unknown time')}); push the same files again to "
                "finish it, or pass --replace-unfinished to discard it"
            )
        logger.warning("discarding the unfinished %s %s version %s in %s", kind[:-1], name, version, self.store.uri)
        self.store.delete_prefix(f"{prefix}/")
        self.store.write_bytes(claim_key, claim)
        return False

    def _claim_next(self, kind: str, name: str, claim: bytes) -> str:
        # A publisher that dies leaves its claim and objects behind. The number stays skipped,
        # and prune_unfinished removes the objects.
        for _ in range(MAX_CLAIM_ATTEMPTS):
            version = next_version(self.versions(kind, name, sealed_only=False))
            if self.store.create_exclusive(self.claim_key(kind, name, version), claim):
                return version
        raise StoreError(f"could not claim a new version of {kind[:-1]} {name} after {MAX_CLAIM_ATTEMPTS} attempts")

    def _upload(self, prefix: str, folder: Path, entries: list[dict], resuming: bool,
                progress: ProgressCallback | None) -> None:
        def upload(entry: dict) -> tuple[str, str]:
            key = f"{prefix}/{entry['path']}"
            if resuming and self.store.object_sha256(key) == entry["sha256"]:
                return entry["path"], "present"
            self.store.upload_file(key, folder / entry["path"], entry["sha256"])
            return entry["path"], "uploaded"

        run_parallel(upload, entries, self.store.parallelism, (lambda result: progress(*result)) if progress else None)

    def _read_claim(self, kind: str, name: str, version: str) -> dict:
        """Return a version's claim as a dict; {} when it is missing or unreadable."""
        for key in (self.claim_key(kind, name, version), f"{self._prefix(kind, name, version)}/{LEGACY_CLAIM}"):
            try:
                claim = json.loads(self.store.read_bytes(key))
            except NotFoundError:
                continue
            except ValueError:
                return {}
            return claim if isinstance(claim, dict) else {}
        return {}

    def unfinished(self, kind: str, name: str) -> list[dict]:
        """Return the versions claimed but never sealed: version, started, pruned and objects.

        started and pruned are the ISO times recorded in the claim (None when absent); objects
        counts what is stored under the version's folder.
        """
        sealed = set(self.versions(kind, name))
        rows = []
        for version in self.versions(kind, name, sealed_only=False):
            if version in sealed:
                continue
            claim = self._read_claim(kind, name, version)
            objects = [key for key in self.store.list(f"{self._prefix(kind, name, version)}/")
                       if not key.endswith(f"/{LEGACY_CLAIM}")]
            rows.append({"version": version, "started": claim.get("started"), "pruned": claim.get("pruned"),
                         "objects": len(objects)})
        return rows

    def prune_unfinished(self, kind: str, name: str, older_than: dt.timedelta, dry_run: bool = False,
                         now: dt.datetime | None = None) -> list[dict]:
        """Delete the objects of unfinished versions started more than older_than ago.

        The claim stays, marked pruned, so the version number is never given out again, and a
        publisher still uploading to it fails when it checks the claim before sealing. One that
        seals in the instant between the mark and the deletion leaves a version whose fetch
        fails its checksums, so a safe age is far longer than any upload.
        A claim without a readable start time is left alone. Returns unfinished()'s rows, each
        with "action": "pruned" (or "would prune" with dry_run), "kept" or "already pruned",
        and "reason".
        """
        if older_than < dt.timedelta(0):
            raise InvalidInputError(f"the age of versions to prune must be >= 0; got {older_than}")
        now = now or dt.datetime.now(dt.timezone.utc)
        rows = []
        for row in self.unfinished(kind, name):
            version, started = row["version"], _parse_time(row["started"])
            if row["pruned"] and row["objects"] == 0:
                row.update(action="already pruned", reason=f"pruned {row['pruned']}")
            elif started is None:
                row.update(action="kept", reason="its claim records no start time")
            elif now - started < older_than:
                row.update(action="kept", reason=f"started {row['started']}, less than {older_than} ago")
            elif dry_run:
                row.update(action="would prune", reason=f"started {row['started']}")
            else:
                self._prune(kind, name, version, now)
                row.update(action="pruned", reason=f"started {row['started']}")
            rows.append(row)
        return rows

    def _prune(self, kind: str, name: str, version: str, now: dt.datetime) -> None:
        prefix = self._prefix(kind, name, version)
        claim = self._read_claim(kind, name, version)
        claim["pruned"] = now.replace(microsecond=0).isoformat()
        # Mark the claim first: a publisher checks it just before sealing.
        self.store.write_bytes(self.claim_key(kind, name, version), json.dumps(claim).encode())
        if self.store.exists(f"{prefix}/{MANIFEST}"):
            # Sealed between the listing and now: leave it whole.
            logger.warning("%s %s version %s was sealed meanwhile; not pruned", kind[:-1], name, version)
            return
        deleted = self.store.delete_prefix(f"{prefix}/")
        logger.info("pruned %s %s version %s: deleted %d objects", kind[:-1], name, version, deleted)

    def fetch(self, kind: str, name: str, version: str, destination: Path | None = None) -> Path:
        """Return a local folder with a version's files, every checksum verified.

        A local store's files are verified in place; other stores are downloaded into
        destination (or a cache folder) first.
        """
        manifest = self.manifest(kind, name, version)
        prefix = self._prefix(kind, name, version)
        local = self.store.local_path(prefix)
        if local is not None and destination is None:
            verify_folder(local, manifest)
            return local
        destination = destination or cache_folder(self.store.uri, prefix, manifest)
        if (destination / MANIFEST).is_file():
            try:
                verify_folder(destination, manifest)
                return destination
            except ChecksumError:
                shutil.rmtree(destination)
        staging = new_folder(_ensure_parent(destination), ".fetch-")
        try:
            relatives = [check_manifest_path(entry["path"]) for entry in manifest["files"]]
            run_parallel(lambda relative: self.store.download_file(f"{prefix}/{relative}", staging / relative),
                         relatives, self.store.parallelism)
            verify_folder(staging, manifest)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
            if destination.exists():
                shutil.rmtree(destination)
            os.replace(staging, destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return destination


def run_parallel(function: Callable, items: list, workers: int, on_result: Callable | None = None) -> None:
    """Call function on every item with up to workers threads; the first error cancels the rest."""
    if workers <= 1:
        for item in items:
            result = function(item)
            if on_result:
                on_result(result)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            for future in as_completed(futures):
                result = future.result()
                if on_result:
                    on_result(result)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def raise_exists(kind: str, name: str, version: str, uri: str):
    """Raise the error for an attempt to write an existing, sealed version."""
    raise VersionExistsError(
        f"{kind[:-1]} {name} version {version} already exists in {uri}; versions are immutable, "
        "so choose a new version"
    )


def _ensure_parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


def cache_folder(store_uri: str, prefix: str, manifest: dict) -> Path:
    """Return the local cache folder for a downloaded version, keyed by its manifest."""
    root = os.environ.get("KUBEFACE_CACHE") or os.path.join(Path.home(), ".cache", "kubeface")
    digest = sha256_bytes(json.dumps(manifest, sort_keys=True).encode())[:16]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", prefix)
    return Path(root) / "fetched" / f"{safe}-{digest}"


def verify_folder(folder: Path, manifest: dict) -> None:
    """Check that every file in the manifest exists with its size and sha256."""
    from kubeface.weights import sha256_file

    for entry in manifest["files"]:
        path = folder / check_manifest_path(entry["path"])
        if not path.is_file():
            raise ChecksumError(
                f"file {entry['path']} listed in the manifest is missing from {folder} "
                f"(expected sha256 {entry['sha256']}, {entry['size']} bytes); fetch or publish the version again"
            )
        size = path.stat().st_size
        if size != entry["size"]:
            raise ChecksumError(
                f"file {path} has {size} bytes, expected {entry['size']} (sha256 {entry['sha256']}); "
                "it is truncated or altered"
            )
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise ChecksumError(f"file {path} has sha256 {actual}, expected {entry['sha256']}; it was altered")


def check_manifest_path(path: str) -> str:
    """Reject a manifest entry that is absolute or climbs out of its version with '..'."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ChecksumError(
            f"manifest lists an invalid file path {path!r}: expected a relative path without '.', '..' "
            "or empty parts; the version is damaged or was not written by kubeface"
        )
    return path


def split_model_uri(uri: str) -> tuple[str, str, str]:
    """Split "<store>/models/<name>/<version>" into (store URI, name, version)."""
    stripped = uri.rstrip("/")
    head, sep, tail = stripped.rpartition("/models/")
    parts = tail.split("/")
    if not sep or len(parts) != 2:
        raise InvalidInputError(
            f"invalid model URI {uri!r}: expected STORE/models/NAME/VERSION, "
            "for example s3://bucket/kubeface/models/facenet-classifier/1.0.0"
        )
    parse_version(parts[1])
    return head or "/", parts[0], parts[1]


def resolve_model(uri: str, s3_endpoint: str | None = None) -> Path:
    """Return a local, verified folder for a model URI or a folder holding manifest.json.

    A model URI names its version explicitly (STORE/models/NAME/X.Y.Z); the store may be a
    folder or s3://.
    """
    path = Path(uri.removeprefix("file://")).expanduser()
    if "://" not in uri.removeprefix("file://") and (path / MANIFEST).is_file():
        manifest = parse_manifest((path / MANIFEST).read_bytes(), str(path / MANIFEST))
        verify_folder(path, manifest)
        return path
    store_uri, name, version = split_model_uri(uri)
    if "://" not in store_uri and not Path(store_uri).is_dir():
        raise ModelError(f"model {uri} not found: store folder {store_uri} does not exist")
    return Catalog.open(store_uri, s3_endpoint).fetch("models", name, version)
