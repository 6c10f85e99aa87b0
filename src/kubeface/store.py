"""Object storage behind one interface: a local directory (the default) or S3.

Keys are relative POSIX paths such as "models/facenet-classifier/1.0.0/manifest.json".
"""

from __future__ import annotations

import abc
import functools
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from kubeface.errors import ConfigurationError, InvalidInputError, NotFoundError, StoreError

DEFAULT_STORE_ENV = "KUBEFACE_STORE"


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """Return this process's umask (reading it means setting it, so it is read once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def new_file(folder: Path, prefix: str):
    """Open a named temporary file for writing with the usual file mode, not mkstemp's 0600.

    Files kubeface writes are read by other users too (a serving container, say).
    """
    stream = tempfile.NamedTemporaryFile(dir=folder, delete=False, prefix=prefix)
    os.chmod(stream.name, 0o666 & ~_umask())
    return stream


def new_folder(parent: Path, prefix: str) -> Path:
    """Create a temporary folder with the usual folder mode, not mkdtemp's 0700."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, 0o777 & ~_umask())
    return folder


def default_store_uri() -> str:
    """Return $KUBEFACE_STORE, else ~/.kubeface/store (the embedded local store)."""
    return os.environ.get(DEFAULT_STORE_ENV) or str(Path.home() / ".kubeface" / "store")


def check_key(key: str) -> str:
    """Reject keys that are absolute or climb out of the store with '..'."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in ("..", ".", "") for part in key.split("/")):
        raise InvalidInputError(f"invalid store key {key!r}: use a relative path without '..' or empty parts")
    return key


class Store(abc.ABC):
    """A flat namespace of objects addressed by key."""

    uri: str

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return an object's content; raises NotFoundError when it does not exist."""

    @abc.abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace an object."""

    @abc.abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create an object only if no object has that key; returns False when one exists."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Return whether an object exists."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Return every key under prefix (recursively), sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""

    parallelism = 1
    """How many uploads or downloads a catalog runs at once against this store."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under prefix; returns how many there were."""
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def upload_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        """Store a local file under key; sha256, when given, is recorded for object_sha256."""
        self.write_bytes(key, Path(path).read_bytes())

    def object_sha256(self, key: str) -> str | None:
        """Return the sha256 of an object (recorded at upload or computed), or None if it is missing."""
        from kubeface.catalog import sha256_bytes

        try:
            return sha256_bytes(self.read_bytes(key))
        except NotFoundError:
            return None

    def download_file(self, key: str, path: Path) -> None:
        """Write an object's content to a local file, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.read_bytes(key)
        with new_file(path.parent, prefix=".download-") as stream:
            stream.write(data)
        os.replace(stream.name, path)

    def child_uri(self, key: str) -> str:
        """Return the URI of a key inside this store."""
        return f"{self.uri.rstrip('/')}/{key}"

    def local_path(self, key: str) -> Path | None:
        """Return the file behind a key when the store is a local directory, else None."""
        return None


class LocalStore(Store):
    """A store in a directory; writes go through a temporary file and a rename."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as error:
            raise NotFoundError(f"object {key!r} not found in store {self.uri}") from error
        except OSError as error:
            raise StoreError(f"cannot read {path}: {error}") from error

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with new_file(path.parent, prefix=".write-") as stream:
            stream.write(data)
        os.replace(stream.name, path)

    def object_sha256(self, key: str) -> str | None:
        from kubeface.weights import sha256_file

        path = self._path(key)
        return sha256_file(path) if path.is_file() else None

    def upload_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with new_file(target.parent, prefix=".write-") as stream:
            pass
        shutil.copyfile(path, stream.name)
        os.replace(stream.name, target)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write a temporary file, then hard-link it into place: the link fails if the key
        # exists, and a reader never sees a half-written object.
        with new_file(path.parent, prefix=".write-") as stream:
            stream.write(data)
        try:
            os.link(stream.name, path)
        except FileExistsError:
            return False
        except OSError:
            # NOTE: file systems without hard links get O_EXCL, where a reader can see a partial file.
            return self._create_exclusive_open(path, data)
        finally:
            os.unlink(stream.name)
        return True

    @staticmethod
    def _create_exclusive_open(path: Path, data: bytes) -> bool:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        return True

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith(".write-"):
                keys.append(path.relative_to(self.root).as_posix())
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        """Delete the folder of prefix whole, with any temporary file an interrupted write left."""
        count = len(self.list(prefix))
        folder = self._path(prefix.rstrip("/"))
        if folder.is_dir():
            shutil.rmtree(folder)
        return count

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass


def open_store(uri: str | None = None, s3_endpoint: str | None = None) -> Store:
    """Open a store from a URI: a path, file://path, or s3://bucket/prefix."""
    uri = uri or default_store_uri()
    if uri.startswith("s3://"):
        try:
            from kubeface.s3 import S3Store
        except ImportError as error:
            raise ConfigurationError(f"S3 stores need the minio package: {error}") from error
        return S3Store.from_uri(uri, endpoint=s3_endpoint)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if "://" in uri:
        raise ConfigurationError(f"unsupported store URI {uri!r}; use a local path, file://PATH or s3://BUCKET/PREFIX")
    return LocalStore(uri)
