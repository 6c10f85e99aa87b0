"""Duplicates by content hash, people dropped, the two-people rule and the one-photo notes."""

from __future__ import annotations

import pytest

from kubeface import dataset_checks
from kubeface.errors import DatasetError
from kubeface.stages import split_rows


def row(path: str, sha: str, split: str = "train", status: str = "aligned", **extra) -> dict:
    return {"path": path, "person": path.split("/")[0], "split": split, "sha256": sha, "status": status, **extra}


def test_duplicate_within_person():
    rows = [row("Ann/a.jpg", "1"), row("Ann/copy of a.jpg", "1"), row("Bob/b.jpg", "2")]
    keep, dropped = dataset_checks.find_duplicates(rows)
    assert keep == [0, 2]
    assert dropped == [{"path": "train:Ann/copy of a.jpg", "reason": "duplicate of train:Ann/a.jpg"}]


def test_duplicate_in_train_and_test():
    # Rows arrive sorted by (split, path), so test rows come before training rows.
    rows = [row("Ann/a.jpg", "1", split="test"), row("Ann/c.jpg", "3", split="test"),
            row("Ann/a.jpg", "1"), row("Bob/b.jpg", "2")]
    keep, dropped = dataset_checks.find_duplicates(rows)
    assert keep == [1, 2, 3]
    assert dropped == [{"path": "test:Ann/a.jpg", "reason": "duplicate of train:Ann/a.jpg"}]


def test_duplicate_within_test():
    rows = [row("Ann/a.jpg", "1", split="test"), row("Ann/b.jpg", "1", split="test"), row("Ann/c.jpg", "2")]
    keep, dropped = dataset_checks.find_duplicates(rows)
    assert keep == [0, 2]
    assert dropped == [{"path": "test:Ann/b.jpg", "reason": "duplicate of test:Ann/a.jpg"}]


def test_duplicate_with_two_labels():
    rows = [row("Ann/group.jpg", "1"), row("Ann/a.jpg", "2"), row("Bob/group.jpg", "1"), row("Bob/b.jpg", "3")]
    keep, dropped = dataset_checks.find_duplicates(rows)
    assert keep == [1, 3]
    reason = ("the same photo is labelled as 2 people ('Ann', 'Bob'): train:Ann/group.jpg, train:Bob/group.jpg; "
              "keep it in one person folder")
    assert dropped == [{"path": "train:Ann/group.jpg", "reason": reason},
                       {"path": "train:Bob/group.jpg", "reason": reason}]


def test_dropped_people_reported(caplog):
    rows = [row("Ann/a.jpg", "1"), row("Bob/b.jpg", "2"),
            row("Cat/c.jpg", "3", status="no_face"), row("Cat/d.jpg", "4", status="unreadable"),
            row("Dan/d.jpg", "5", split="test", status="no_face")]
    with caplog.at_level("WARNING", logger="kubeface.dataset_checks"):
        report = dataset_checks.dropped_people(rows, ["Ann", "Bob"])
    reason = "person dropped: none of 2 training photos is usable (1 no_face, 1 unreadable); 'Cat' is not a class"
    assert report == [{"path": "train:Cat/", "reason": reason}]
    assert [r.getMessage() for r in caplog.records] == [f"train:Cat/: {reason}"]


def test_require_people_message():
    rows = [row("Ann/a.jpg", "1"), row("Bob/b.jpg", "2", status="no_face", reason="no face detected"),
            row("Bob/c.jpg", "3", status="unreadable", reason="image data is truncated or corrupt (9 bytes)")]
    with pytest.raises(DatasetError) as caught:
        dataset_checks.require_people(["Ann"], rows)
    assert str(caught.value) == (
        "training needs photos of at least 2 people with a detected face; found 1 (Ann) in 3 training photos "
        "(1 aligned, 1 no_face, 1 unreadable); unusable: train:Bob/b.jpg: no face detected; "
        "train:Bob/c.jpg: image data is truncated or corrupt (9 bytes); add photos with one clear face per "
        "person folder")


def test_require_people_enough():
    dataset_checks.require_people(["Ann", "Bob"], [])


def test_check_before_embedding_single_shard():
    index = {"shard": [0, 1], "rows": [row("Ann/a.jpg", "1"), row("Bob/b.jpg", "2", status="no_face"),
                                       row("Bob/c.jpg", "3", split="test")]}
    with pytest.raises(DatasetError, match=r"found 1 \(Ann\) in 2 training photos"):
        dataset_checks.check_people_before_embedding(index)


def test_check_before_embedding_sharded():
    # One shard of two cannot see every person, so it does not judge.
    index = {"shard": [1, 2], "rows": [row("Ann/a.jpg", "1")]}
    dataset_checks.check_people_before_embedding(index)


def test_several_faces_report():
    rows = [row("Ann/a.jpg", "1", faces=1, several_faces=False), row("Ann/b.jpg", "2", faces=3, several_faces=True)]
    assert dataset_checks.several_faces(rows) == [
        {"path": "train:Ann/b.jpg", "faces": 3, "reason": "3 faces found; the largest face nearest the centre was used"}]


def test_split_one_photo_person_not_tested():
    rows = [row(f"Ann/{i}.jpg", str(i)) for i in range(8)] + [row("Bob/0.jpg", "b")]
    train, test, excluded, notes = split_rows(rows, test_fraction=0.25, seed=0)
    assert 8 in train
    assert 8 not in test
    assert len(test) == 2
    assert excluded == []
    assert notes == [{"path": "train:Bob/0.jpg", "reason": "'Bob' has one usable photo: used for training only"}]


def test_split_one_photo_person_with_test_folder():
    rows = [row("Ann/0.jpg", "0"), row("Ann/1.jpg", "1"), row("Bob/0.jpg", "2"),
            row("Ann/2.jpg", "3", split="test"), row("Cat/0.jpg", "4", split="test")]
    train, test, excluded, notes = split_rows(rows, test_fraction=0.25, seed=0)
    assert train == [0, 1, 2]
    assert test == [3]
    assert excluded == [{"path": "test:Cat/0.jpg", "reason": "person 'Cat' has no training photo"}]
    assert notes == [{"path": "train:Bob/0.jpg", "reason": "'Bob' has one usable photo: used for training only"}]
