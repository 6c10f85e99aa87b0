"""The pipeline with its align and embed work split into shards, run twice through the KFP local
runner on the bundled demo photos: shards=2 must give the same classifier as shards=1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kubeface.imageio import read_image
from kubeface.localrun import run_pipeline
from kubeface.recognizer import Recognizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(demo_root, tmp_path_factory) -> dict[int, tuple[dict, Path]]:
    """Train once with one shard and once with two, publishing both to the same local store."""
    store = tmp_path_factory.mktemp("sharding-store")
    results = {}
    for shards in (1, 2):
        root = tmp_path_factory.mktemp(f"sharding-runs-{shards}")
        arguments = {
            "dataset_uri": str(demo_root / "dataset"), "test_dataset_uri": str(demo_root / "test"),
            "store_uri": str(store), "s3_endpoint": "", "model_name": "sharding", "min_accuracy": 0.9,
            "margin": 32, "image_size": 160, "precision": "FP32", "shards": shards,
        }
        results[shards] = (run_pipeline(arguments, root), root)
    return results


def published_folder(summary: dict) -> Path:
    return Path(summary["model_uri"])


def people(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def test_both_runs_publish(runs, demo_root):
    versions = []
    for shards, (summary, _) in runs.items():
        assert summary["passed"] is True, shards
        assert summary["published"] is True, shards
        assert summary["labels"] == people(demo_root / "dataset"), shards
        versions.append(published_folder(summary).name)
    assert versions == ["1.0.0", "1.0.1"]
    assert runs[1][0]["n_train"] == runs[2][0]["n_train"] == 150
    assert runs[1][0]["n_test"] == runs[2][0]["n_test"] == 50


def test_print_restored_after_run(runs):
    import builtins

    # The fixture's runs ended before this test; print must be Python's own again.
    assert builtins.print.__module__ == "builtins"
    assert builtins.print.__name__ == "print"


def test_shards_are_disjoint_slices(runs, demo_root):
    _, root = runs[2]
    (run_folder,) = [p for p in root.iterdir() if p.is_dir()]
    indexes = sorted(run_folder.glob("for-loop-*-iteration-*/align/aligned/index.json"))
    assert len(indexes) == 2
    slices = [json.loads(path.read_text(encoding="utf-8")) for path in indexes]
    assert sorted(tuple(index["shard"]) for index in slices) == [(0, 2), (1, 2)]
    paths = [{(row["split"], row["path"]) for row in index["rows"]} for index in slices]
    assert all(paths), "a shard got no photos"
    assert not paths[0] & paths[1]
    photos = {("train", p.relative_to(demo_root / "dataset").as_posix())
              for p in (demo_root / "dataset").rglob("*.jpg")}
    photos |= {("test", p.relative_to(demo_root / "test").as_posix()) for p in (demo_root / "test").rglob("*.jpg")}
    assert paths[0] | paths[1] == photos


def test_same_embeddings_and_classifier(runs):
    single, double = (published_folder(runs[n][0]) / "classifier" for n in (1, 2))
    classes = [json.loads((folder / "classifier.json").read_text())["classes"] for folder in (single, double)]
    assert classes[0] == classes[1]
    with np.load(single / "gallery.npz", allow_pickle=False) as expected, \
            np.load(double / "gallery.npz", allow_pickle=False) as actual:
        assert expected["embeddings"].shape == (150, 512)
        np.testing.assert_allclose(actual["embeddings"], expected["embeddings"], atol=1e-5)
        np.testing.assert_array_equal(actual["labels"], expected["labels"])
    with np.load(single / "classifier.npz", allow_pickle=False) as expected, \
            np.load(double / "classifier.npz", allow_pickle=False) as actual:
        assert sorted(actual.files) == sorted(expected.files)
        for name in expected.files:
            np.testing.assert_allclose(actual[name], expected[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_same_predictions_on_test_photos(runs, demo_root):
    recognizers = [Recognizer.from_uri(runs[n][0]["model_uri"]) for n in (1, 2)]
    photos = sorted((demo_root / "test").rglob("*.jpg"))
    assert len(photos) == 50
    for photo in photos:
        image = read_image(photo)
        results = [recognizer.recognize(image) for recognizer in recognizers]
        labels = [[face.label for face in result.faces] for result in results]
        assert labels[0] == labels[1], photo.name
        assert photo.parent.name in labels[0], photo.name
        for first, second in zip(results[0].faces, results[1].faces):
            assert first.probability == pytest.approx(second.probability, abs=1e-4), photo.name
