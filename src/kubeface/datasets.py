"""Read a folder of person photos, <root>/<person>/<photo>, into a list of labelled files."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import unicodedata
from pathlib import Path

from kubeface.errors import DatasetError
from kubeface.imageio import IMAGE_SUFFIXES, SUPPORTED_TEXT

logger = logging.getLogger(__name__)

TRAIN = "train"
TEST = "test"


@dataclasses.dataclass
class Photo:
    """One photo file of one person."""

    path: str
    """Path relative to the dataset root, POSIX separators."""
    person: str
    split: str
    sha256: str
    source: Path


@dataclasses.dataclass
class Skipped:
    """A file or folder that was not used, with the reason."""

    path: str
    reason: str

    def to_json(self) -> dict:
        return {"path": self.path, "reason": self.reason}


def check_person_name(name: str) -> str:
    """Accept any folder name as a person except path tricks, blank names and unprintable names.

    Spaces inside, apostrophes and any script (José Ñúñez, 张伟) are kept exactly. Rejected:
    '.', '..', '/' or '\\', leading or trailing spaces, control characters, and bytes that
    are not UTF-8.
    """
    if name in ("", ".", "..") or "/" in name or "\\" in name or name != name.strip():
        raise DatasetError(
            f"invalid person name {name!r}: a person is a folder name without '/', '\\\\', "
            "leading or trailing spaces, and not '.' or '..'; rename the folder"
        )
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise DatasetError(f"invalid person name {name!r}: it contains control characters; rename the folder")
    if not _is_utf8(name):
        raise DatasetError(
            f"invalid person name {printable_name(name)!r}: the folder name is not valid UTF-8; rename the folder"
        )
    return name


def _is_utf8(name: str) -> bool:
    # Undecodable bytes in file names reach Python as lone surrogates (PEP 383).
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_name(name: str) -> str:
    """Return a file name that can be written as UTF-8, with undecodable bytes as \\xNN escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def scan_folder(root: Path, split: str) -> tuple[list[Photo], list[Skipped]]:
    """List the photos under root/<person>/ and every file or folder that was skipped.

    Files at the root, hidden files such as .DS_Store, nested folders, files whose suffix is
    not an image, files that are not regular files or cannot be read, and person folders
    without a photo are skipped with a reason. Person names keep their exact spelling, in
    Unicode NFC form.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder")
    photos, skipped = [], []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        relative = f"{split}:{printable_name(entry.name)}"
        if entry.name.startswith("."):
            skipped.append(Skipped(relative, "hidden file or folder"))
            continue
        if not entry.is_dir():
            skipped.append(Skipped(relative, "file at the dataset root is not in a person folder"))
            continue
        try:
            person = check_person_name(unicodedata.normalize("NFC", entry.name))
        except DatasetError as error:
            skipped.append(Skipped(relative, str(error)))
            continue
        found = _scan_person(entry, person, split, skipped)
        if not found:
            logger.warning("person folder %s has no photo; %r is not a class", relative, person)
            skipped.append(Skipped(f"{relative}/", f"person folder has no photo ({SUPPORTED_TEXT}); "
                                                   f"{person!r} is not a class"))
        photos += found
    return photos, skipped


def _scan_person(folder: Path, person: str, split: str, skipped: list[Skipped]) -> list[Photo]:
    photos = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        relative = f"{folder.name}/{item.name}"
        shown = f"{split}:{printable_name(relative)}"
        if item.name.startswith("."):
            skipped.append(Skipped(shown, "hidden file"))
        elif item.is_dir():
            skipped.append(Skipped(shown, "nested folder inside a person folder"))
        elif not item.is_file():
            skipped.append(Skipped(shown, "not a regular file"))
        elif item.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(Skipped(shown, f"not an image file (suffix {item.suffix!r}); supported: {SUPPORTED_TEXT}"))
        elif not _is_utf8(item.name):
            skipped.append(Skipped(shown, "file name is not valid UTF-8; rename the file"))
        else:
            try:
                digest = hashlib.sha256(item.read_bytes()).hexdigest()
            except OSError as error:
                skipped.append(Skipped(shown, f"cannot read the file: {error.strerror or error}"))
                continue
            photos.append(Photo(relative, person, split, digest, item))
    return photos


def scan_dataset(train_root: Path, test_root: Path | None = None,
                 unknown_root: Path | None = None) -> tuple[list[Photo], list[Skipped]]:
    """Scan the training folder and, when given, the test folder and the unknown-people folder."""
    photos, skipped = scan_folder(train_root, TRAIN)
    if test_root is not None:
        test_photos, test_skipped = scan_folder(test_root, TEST)
        photos += test_photos
        skipped += test_skipped
    if unknown_root is not None:
        unknown_photos, unknown_skipped = scan_unknown_folder(unknown_root)
        photos += unknown_photos
        skipped += unknown_skipped
    return photos, skipped


def shard(photos: list[Photo], index: int, count: int) -> list[Photo]:
    """Return the photos of shard index out of count: disjoint, stable slices by sorted position."""
    if count < 1 or not 0 <= index < count:
        raise DatasetError(f"shard index must be in [0, {count}) with at least 1 shard; got {index} of {count}")
    ordered = sorted(photos, key=lambda p: (p.split, p.path))
    return ordered[index::count]


UNKNOWN = "unknown"


def scan_unknown_folder(root: Path) -> tuple[list[Photo], list[Skipped]]:
    """List the photos of people who are absent from training and must be rejected as unknown.

    The folder contains person folders, <root>/<person>/<photo>, and photos at its root. Each
    photo at the root counts as a person of its own, named after the file. Keeping one
    person's photos in one folder keeps them on the same side when the rejection thresholds
    are chosen on some unknown people and measured on the others.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"unknown-people folder {root} does not exist or is not a folder")
    photos, skipped = scan_folder(root, UNKNOWN)
    remaining = []
    for item in skipped:
        name = item.path.removeprefix(f"{UNKNOWN}:")
        source = root / name
        is_photo = "/" not in name and not name.startswith(".") and source.is_file()
        if not is_photo or source.suffix.lower() not in IMAGE_SUFFIXES:
            remaining.append(item)
            continue
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        photos.append(Photo(name, source.stem, UNKNOWN, digest, source))
    return sorted(photos, key=lambda p: p.path), remaining
