"""The dataset scanner: what becomes a photo, what is skipped and why, and which names are people."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path

import pytest

from kubeface.datasets import TRAIN, check_person_name, scan_folder
from kubeface.errors import DatasetError


def write(path: Path, data: bytes = b"\xff\xd8\xff\xe0 not really a jpeg") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def reasons(skipped) -> dict[str, str]:
    return {item.path: item.reason for item in skipped}


def test_scan_skips_non_photos(tmp_path):
    write(tmp_path / "Ann" / "a.jpg")
    write(tmp_path / "Ann" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(tmp_path / "Ann" / "._a.jpg")
    write(tmp_path / "Ann" / "notes.txt", b"taken in 2019")
    write(tmp_path / "Ann" / "IMG_0001.HEIC", b"heic")
    write(tmp_path / "Ann" / "raw" / "b.jpg")
    write(tmp_path / "README.txt", b"stray")
    write(tmp_path / "stray.jpg")
    write(tmp_path / ".DS_Store")
    photos, skipped = scan_folder(tmp_path, TRAIN)
    assert [p.path for p in photos] == ["Ann/a.jpg"]
    found = reasons(skipped)
    assert found["train:Ann/.DS_Store"] == "hidden file"
    assert found["train:Ann/._a.jpg"] == "hidden file"
    assert found["train:Ann/notes.txt"].startswith("not an image file (suffix '.txt'); supported: JPEG, PNG")
    assert found["train:Ann/IMG_0001.HEIC"].startswith("not an image file (suffix '.HEIC')")
    assert found["train:Ann/raw"] == "nested folder inside a person folder"
    assert found["train:README.txt"] == "file at the dataset root is not in a person folder"
    assert found["train:stray.jpg"] == "file at the dataset root is not in a person folder"
    assert found["train:.DS_Store"] == "hidden file or folder"
    assert len(skipped) == 8


def test_scan_photo_identity(tmp_path):
    data = b"\x89PNG\r\n\x1a\n some bytes"
    write(tmp_path / "Ann" / "a.png", data)
    write(tmp_path / "Bob" / "b.PNG", data)
    photos, _ = scan_folder(tmp_path, "test")
    assert [(p.path, p.person, p.split) for p in photos] == [("Ann/a.png", "Ann", "test"), ("Bob/b.PNG", "Bob", "test")]
    assert {p.sha256 for p in photos} == {hashlib.sha256(data).hexdigest()}


def test_scan_empty_person_folder(tmp_path, caplog):
    write(tmp_path / "Ann" / "a.jpg")
    (tmp_path / "Empty").mkdir()
    write(tmp_path / "OnlyNotes" / "notes.txt", b"x")
    with caplog.at_level("WARNING", logger="kubeface.datasets"):
        photos, skipped = scan_folder(tmp_path, TRAIN)
    assert {p.person for p in photos} == {"Ann"}
    found = reasons(skipped)
    assert found["train:Empty/"].endswith("'Empty' is not a class")
    assert found["train:OnlyNotes/"].startswith("person folder has no photo")
    warned = [r.getMessage() for r in caplog.records]
    assert "person folder train:Empty has no photo; 'Empty' is not a class" in warned
    assert "person folder train:OnlyNotes has no photo; 'OnlyNotes' is not a class" in warned


def test_scan_special_file(tmp_path):
    write(tmp_path / "Ann" / "a.jpg")
    os.mkfifo(tmp_path / "Ann" / "pipe.jpg")
    photos, skipped = scan_folder(tmp_path, TRAIN)
    assert [p.path for p in photos] == ["Ann/a.jpg"]
    assert reasons(skipped) == {"train:Ann/pipe.jpg": "not a regular file"}


def test_scan_undecodable_names(tmp_path):
    root = os.fsencode(tmp_path)
    os.makedirs(root + b"/Ann")
    write(tmp_path / "Ann" / "a.jpg")
    with open(root + b"/Ann/caf\xe9.jpg", "wb") as stream:
        stream.write(b"latin-1 name")
    os.makedirs(root + b"/Ren\xe9")
    with open(root + b"/Ren\xe9/a.jpg", "wb") as stream:
        stream.write(b"photo")
    photos, skipped = scan_folder(tmp_path, TRAIN)
    assert [p.path for p in photos] == ["Ann/a.jpg"]
    found = reasons(skipped)
    assert found["train:Ann/caf\\xe9.jpg"] == "file name is not valid UTF-8; rename the file"
    assert "the folder name is not valid UTF-8" in found["train:Ren\\xe9"]
    # Every reported path can be written as UTF-8 JSON.
    for path in found:
        path.encode("utf-8")


@pytest.mark.parametrize("name", ["José Ñúñez", "张伟", "Conan O'Brien", "Anne-Marie  Smith", "a.b..."])
def test_person_name_kept_exactly(tmp_path, name):
    write(tmp_path / name / "a.jpg")
    photos, skipped = scan_folder(tmp_path, TRAIN)
    assert skipped == []
    assert [p.person for p in photos] == [name]


def test_person_name_nfd_becomes_nfc(tmp_path):
    decomposed = unicodedata.normalize("NFD", "José Ñúñez")
    assert decomposed != "José Ñúñez"
    write(tmp_path / decomposed / "a.jpg")
    photos, _ = scan_folder(tmp_path, TRAIN)
    assert [p.person for p in photos] == ["José Ñúñez"]
    assert photos[0].path == f"{decomposed}/a.jpg"


@pytest.mark.parametrize(("name", "message"), [
    ("..", r"invalid person name '\.\.': a person is a folder name without '/'"),
    (".", r"invalid person name '\.'"),
    ("a/b", r"invalid person name 'a/b'"),
    ("..\\..\\etc", r"invalid person name '\.\.\\\\\.\.\\\\etc'"),
    (" Ann", r"invalid person name ' Ann'.*leading or trailing spaces"),
    ("", r"invalid person name ''"),
    ("Ann\nBob", r"invalid person name 'Ann\\nBob': it contains control characters; rename the folder"),
])
def test_person_name_rejected(name, message):
    with pytest.raises(DatasetError, match=message):
        check_person_name(name)


def test_scan_rejects_path_trick_folder(tmp_path):
    write(tmp_path / "Ann\\..\\..\\etc" / "a.jpg")
    write(tmp_path / "Ann" / "a.jpg")
    photos, skipped = scan_folder(tmp_path, TRAIN)
    assert {p.person for p in photos} == {"Ann"}
    assert reasons(skipped)["train:Ann\\..\\..\\etc"].startswith("invalid person name 'Ann\\\\..\\\\..\\\\etc'")


def test_scan_missing_root(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset folder .*/absent does not exist or is not a folder"):
        scan_folder(tmp_path / "absent", TRAIN)
