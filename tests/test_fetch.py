"""fetch: the dataset copy, and what it cannot copy."""

import os
import shutil

import pytest

from kubeface import stages


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_named_pipe_is_reported_not_copied(tmp_path, demo_root, ir_dir):
    dataset = tmp_path / "photos"
    for person in ("Colin_Powell", "Laura_Bush"):
        (dataset / person).mkdir(parents=True)
        for photo in sorted((demo_root / "dataset" / person).iterdir())[:2]:
            shutil.copy2(photo, dataset / person / photo.name)
    os.mkfifo(dataset / "Laura_Bush" / "camera-roll.jpg")

    plan = stages.run_fetch(str(dataset), tmp_path / "fetched")
    expected = {"path": "train:Laura_Bush/camera-roll.jpg", "reason": "not a regular file (pipe, socket or device)"}
    assert plan["not_copied"] == [expected]
    assert plan["photos"] == 4

    stages.run_align(str(tmp_path / "fetched" / "train"), ir_dir, tmp_path / "aligned")
    index = stages.read_json(tmp_path / "aligned" / stages.INDEX_FILE)
    assert expected in index["skipped"]
    assert [row["status"] for row in index["rows"]] == ["aligned"] * 4
