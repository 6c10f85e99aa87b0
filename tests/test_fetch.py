"""fetch: the dataset copy, and what it cannot copy."""

import os
import shutil

import pytest

from kubeface import stages
from kubeface.errors import DatasetError


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_named_pipe_is_reported_not_copied(tmp_path, demo_root, ir_dir):
    dataset = tmp_path / "photos"
    for person in ("Colin_Powell", "Laura_Bush"):
        (dataset / person).mkdir(parents=True)
        for photo in sorted((demo_root / "dataset" / person).iterdir())[:2]:
            shutil.copy2(photo, dataset / person / photo.name)
    os.mkfifo(dataset / "Laura_Bush" / "camera-roll.jpg")

    plan = stages.run_fetch(str(dataset), tmp_path / "fetched")
    expected = {"path": "train:Laura_Bush/camera-roll.jpg", "reason": "not a regular file (a pipe, socket or device)"}
    assert plan["not_copied"] == [expected]
    assert plan["photos"] == 4

    stages.run_align(str(tmp_path / "fetched" / "train"), ir_dir, tmp_path / "aligned")
    index = stages.read_json(tmp_path / "aligned" / stages.INDEX_FILE)
    assert expected in index["skipped"]
    assert [row["status"] for row in index["rows"]] == ["aligned"] * 4


def test_symbolic_link_is_reported_not_copied(tmp_path, demo_root):
    dataset = tmp_path / "photos"
    for person in ("Colin_Powell", "Laura_Bush"):
        (dataset / person).mkdir(parents=True)
        for photo in sorted((demo_root / "dataset" / person).iterdir())[:2]:
            shutil.copy2(photo, dataset / person / photo.name)
    outside = sorted((demo_root / "dataset" / "Tony_Blair").iterdir())[0]
    (dataset / "Laura_Bush" / "linked.jpg").symlink_to(outside)

    plan = stages.run_fetch(str(dataset), tmp_path / "fetched")
    assert plan["not_copied"] == [{"path": "train:Laura_Bush/linked.jpg",
                                   "reason": "not a regular file (a symbolic link)"}]
    assert plan["photos"] == 4
    assert not (tmp_path / "fetched" / "train" / "Laura_Bush" / "linked.jpg").exists()


def test_empty_unknown_dataset_rejected(tmp_path, demo_root):
    dataset = tmp_path / "photos"
    for person in ("Colin_Powell", "Laura_Bush"):
        (dataset / person).mkdir(parents=True)
        for photo in sorted((demo_root / "dataset" / person).iterdir())[:2]:
            shutil.copy2(photo, dataset / person / photo.name)
    empty = tmp_path / "strangers"
    (empty / "Nobody").mkdir(parents=True)
    (empty / "notes.txt").write_text("no photos here")

    with pytest.raises(DatasetError) as caught:
        stages.run_fetch(str(dataset), tmp_path / "fetched", unknown_dataset_uri=str(empty))
    assert str(caught.value).startswith(f"the unknown-people dataset {empty} has no photos")
