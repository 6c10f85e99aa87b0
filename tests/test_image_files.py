"""Expanding the photo arguments of `kubeface recognize`, `predict` and `enroll` into files."""

from __future__ import annotations

import os

import pytest

from kubeface.errors import InvalidInputError
from kubeface.imageio import image_files


def test_folders_searched_recursively_in_order(tmp_path):
    for relative in ("b/2.PNG", "b/notes.txt", "a/deep/1.jpg", "a/0.jpeg", "c.webp"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    found = image_files([str(tmp_path / "b"), str(tmp_path / "a")])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["b/2.PNG", "a/0.jpeg", "a/deep/1.jpg"]


def test_file_named_directly_kept_whatever_its_suffix(tmp_path):
    photo = tmp_path / "photo.data"
    photo.write_bytes(b"x")
    assert image_files([str(photo)]) == [photo]


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nowhere.jpg"
    with pytest.raises(InvalidInputError, match=f"photo {missing} does not exist"):
        image_files([str(missing)])


def test_named_pipe_rejected(tmp_path):
    pipe = tmp_path / "camera.jpg"
    os.mkfifo(pipe)
    with pytest.raises(InvalidInputError, match=f"photo {pipe} is not a regular file"):
        image_files([str(pipe)])
