"""Dataset versions in the catalog, and the resolution of a dataset URI to a local folder."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import warnings
from pathlib import Path

from kubeface import datasets
from kubeface.catalog import (
    CLAIMS,
    LEGACY_CLAIM,
    MANIFEST,
    Catalog,
    ProgressCallback,
    check_name,
    entries_digest,
    file_entries,
    parse_version,
)
from kubeface.errors import DatasetError, InvalidInputError, NotFoundError

logger = logging.getLogger(__name__)


def folder_digest(root: Path) -> str:
    """Return a sha256 over the sorted relative paths and sha256s of a folder's files."""
    return entries_digest(file_entries(root))


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
    claimed = (plain.parent / CLAIMS / plain.name).is_file() or (plain / LEGACY_CLAIM).is_file()
    if "://" not in uri.removeprefix("file://") and claimed and not (plain / MANIFEST).is_file():
        raise NotFoundError(f"dataset {uri} is an unfinished catalog version (no {MANIFEST}); run its "
                            "`kubeface dataset push` again to finish it")
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


@dataclasses.dataclass
class PushResult:
    """The outcome of `kubeface dataset push`."""

    uri: str
    version: str
    people: dict[str, int]
    """Photos per person, by person name."""
    uploaded: int
    present: int
    """Photos already in the store with the same sha256 (an earlier, interrupted push)."""
    skipped: list[dict]
    """Files that are not photos of a person folder, as {path, reason}; they are not uploaded."""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _readable_photos(photos: list) -> tuple[list, list]:
    """Keep the photos whose header an image decoder accepts within the pixel limit.

    Only the header is read (no pixel is decoded), so a text file named .jpg, an empty file or a
    decompression bomb is listed as skipped instead of being uploaded and counted as a photo.
    """
    from PIL import Image, UnidentifiedImageError

    from kubeface.imageio import DEFAULT_MAX_PIXELS

    kept, skipped = [], []
    for photo in photos:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(photo.source) as image:
                    width, height = image.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as error:
            skipped.append(datasets.Skipped(photo.path, f"not a readable image: {error}"))
            continue
        if width * height > DEFAULT_MAX_PIXELS:
            skipped.append(datasets.Skipped(photo.path, f"image is {width}x{height} = {width * height} pixels, "
                                                        f"above the limit of {DEFAULT_MAX_PIXELS}"))
            continue
        kept.append(photo)
    return kept, skipped


def push(folder: Path, name: str, version: str, store_uri: str | None = None, s3_endpoint: str | None = None,
         progress: ProgressCallback | None = None, replace_unfinished: bool = False) -> PushResult:
    """Upload the photos of <folder>/<person>/<photo> as an immutable dataset version.

    Only photos go up; hidden files, files outside person folders and non-images are listed
    in the manifest's metadata as skipped. Running it again after an interruption uploads
    only the photos that are missing.
    """
    check_name(name, "dataset")
    parse_version(version)
    folder = Path(folder)
    photos, skipped = datasets.scan_folder(folder, datasets.TRAIN)
    photos, unusable = _readable_photos(photos)
    skipped += unusable
    if not photos:
        raise DatasetError(f"no photos found in {folder}; expected <root>/<person>/<photo> with JPEG, PNG, BMP "
                           "or WebP files")
    people = dict(sorted(collections.Counter(p.person for p in photos).items()))
    skipped_json = [{"path": s.path.split(":", 1)[-1], "reason": s.reason} for s in skipped]
    metadata = {"people": list(people), "photos": len(photos), "photos_per_person": people, "skipped": skipped_json}
    counts = collections.Counter()

    def count(path: str, action: str) -> None:
        counts[action] += 1
        if progress:
            progress(path, action)

    catalog = Catalog.open(store_uri, s3_endpoint)
    catalog.publish("datasets", name, folder, metadata, version=version, files=[p.path for p in photos],
                    progress=count, replace_unfinished=replace_unfinished)
    uri = catalog.store.child_uri(f"datasets/{name}/{version}")
    logger.info("pushed %s: %d uploaded, %d already present", uri, counts["uploaded"], counts["present"])
    return PushResult(uri, version, people, counts["uploaded"], counts["present"], skipped_json)
