"""Retraining from a new dataset version: one more person, cached embeddings, the comparison gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from growth import demo_with_new_person, train_version

from kubeface.catalog import Catalog, verify_folder
from kubeface.imageio import read_image
from kubeface.recognizer import Recognizer

NAME = "faces"
NEW_PERSON = "Vladimir_Putin"


@pytest.fixture(scope="module")
def versions(ir_dir, demo_root, tmp_path_factory):
    """Version 1 from the 10 demo people, then version 2 from a dataset that adds Vladimir_Putin."""
    work = tmp_path_factory.mktemp("retrain")
    store = str(work / "store")
    first = train_version(
        ir_dir,
        demo_root / "dataset",
        demo_root / "test",
        work / "run1",
        store,
        NAME,
        unknown_dataset=demo_root / "unknown",
    )
    v1_manifest = (Path(store) / "models" / NAME / "1.0.0" / "manifest.json").read_bytes()
    dataset, test = demo_with_new_person(demo_root, work / "faces-1.0.1")
    second = train_version(
        ir_dir,
        dataset,
        test,
        work / "run2",
        store,
        NAME,
        unknown_dataset=demo_root / "unknown",
        require_not_worse=True,
    )
    return {"store": store, "first": first, "second": second, "work": work, "v1_manifest": v1_manifest}


def test_first_version_embeds_every_photo(versions):
    cache = versions["first"]["cache"]
    assert cache["enabled"] is True
    assert cache["hits"] == 0
    assert cache["misses"] == 220  # 150 training, 50 test and 20 unknown photos
    assert cache["embedded"] == 220


def test_second_version_embeds_only_new_photos(versions):
    cache = versions["second"]["cache"]
    assert cache["hits"] == 220
    assert cache["misses"] == 20  # Vladimir_Putin's 15 training and 5 test photos
    assert cache["embedded"] == 20


def test_versions_are_published_in_order(versions):
    assert versions["first"]["model_uri"].endswith(f"/models/{NAME}/1.0.0")
    assert versions["second"]["model_uri"].endswith(f"/models/{NAME}/1.0.1")
    assert NEW_PERSON not in versions["first"]["labels"]
    assert NEW_PERSON in versions["second"]["labels"]
    assert len(versions["second"]["labels"]) == 11


def test_first_version_untouched_by_second(versions):
    folder = Path(versions["store"]) / "models" / NAME / "1.0.0"
    assert (folder / "manifest.json").read_bytes() == versions["v1_manifest"]
    verify_folder(folder, json.loads(versions["v1_manifest"]))
    assert Catalog.open(versions["store"]).versions("models", NAME) == ["1.0.0", "1.0.1"]


def test_new_person_named_only_by_second_version(versions, demo_root):
    photos = sorted((demo_root / "new_person" / "test" / NEW_PERSON).glob("*.jpg"))
    assert len(photos) == 5
    first = Recognizer.from_uri(versions["first"]["model_uri"])
    second = Recognizer.from_uri(versions["second"]["model_uri"])
    for photo in photos:
        image = read_image(photo)
        before = first.recognize(image).faces
        after = second.recognize(image).faces
        assert len(before) == 1, photo.name
        assert len(after) == 1, photo.name
        assert before[0].label is None, f"version 1 named {photo.name} {before[0].label}"
        assert after[0].label == NEW_PERSON, photo.name


def test_comparison_with_published_version(versions):
    comparison = versions["second"]["comparison"]
    assert comparison["version"] == "1.0.0"
    assert comparison["basis"] == "same test photos"
    assert comparison["people_added"] == [NEW_PERSON]
    assert comparison["people_removed"] == []
    # Version 1 cannot name the 5 new test photos; both name the other 50 right.
    assert comparison["accuracy_before"] == pytest.approx(50 / 55)
    assert comparison["accuracy_after"] == pytest.approx(1.0)
    assert versions["second"]["passed"] is True
    assert "of version 1.0.0 (same test photos)" in versions["second"]["reason"]


def test_per_person_changes_reported(versions):
    report = json.loads((versions["work"] / "run2" / "validate" / "report.json").read_text())
    per_person = report["comparison"]["per_person"]
    assert per_person[NEW_PERSON] == {"recall_before": 0.0, "recall_after": 1.0, "change": 1.0}
    assert per_person["Tony_Blair"]["change"] == 0.0
    assert report["comparison"]["recall_dropped"] == []


def test_first_version_has_no_comparison(versions):
    assert versions["first"]["comparison"] is None


def test_not_worse_gate_fails_worse_model(versions, ir_dir, demo_root, tmp_path):
    # Swap the training photos of two people: their test photos are then named wrong.
    dataset, test = demo_with_new_person(demo_root, tmp_path / "faces-swapped")
    shutil.move(dataset / "Tony_Blair", tmp_path / "held")
    shutil.move(dataset / "Colin_Powell", dataset / "Tony_Blair")
    shutil.move(tmp_path / "held", dataset / "Colin_Powell")
    result = train_version(
        ir_dir,
        dataset,
        test,
        tmp_path / "run",
        versions["store"],
        NAME,
        min_accuracy=0.5,
        require_not_worse=True,
    )
    assert result["accuracy"] == pytest.approx(45 / 55)
    assert result["passed"] is False
    assert result["published"] is False
    assert "< 1.0000 of version 1.0.1" in result["reason"]
    assert result["comparison"]["recall_dropped"] == ["Colin_Powell", "Tony_Blair"]
    # Every photo was seen before: nothing new was embedded.
    assert result["cache"]["embedded"] == 0
    assert Catalog.open(versions["store"]).versions("models", NAME) == ["1.0.0", "1.0.1"]


def test_duplicate_across_train_and_test_dropped_from_test(ir_dir, demo_root, tmp_path):
    dataset, test = demo_with_new_person(demo_root, tmp_path / "faces")
    copied = sorted((dataset / "Laura_Bush").glob("*.jpg"))[0]
    shutil.copy(copied, test / "Laura_Bush" / "copy_of_training_photo.jpg")
    result = train_version(ir_dir, dataset, test, tmp_path / "run", str(tmp_path / "store"), NAME)
    assert result["duplicates"] == 1
    assert result["n_test"] == 55
    assert result["n_train"] == 165
    reasons = {item["path"]: item["reason"] for item in result["skipped"]}
    assert (
        reasons["test:Laura_Bush/copy_of_training_photo.jpg"]
        == f"duplicate of train:Laura_Bush/{copied.name}"
    )
