"""`kubeface dataset` and `kubeface model` commands on a local folder and on SeaweedFS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubeface.catalog import Catalog
from kubeface.cli import main

MODEL_METADATA = {
    "metrics": {"accuracy": 0.98, "n_test": 50, "n_train": 150, "min_accuracy": 0.9, "passed": True},
    "dataset": {"uri": "s3://kubeface/team/datasets/faces/1.0.0", "name": "faces", "version": "1.0.0",
                "digest": "ab" * 32},
    "labels": ["Ariel_Sharon", "Colin_Powell"],
    "libraries": {"kubeface": "0.1.0", "openvino": "2026.4.1"},
}


@pytest.fixture(params=["local", "s3"])
def store_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_env").store_uri()


def run(capsys, *arguments) -> tuple[int, str, str]:
    code = main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def people_counts(root: Path) -> dict[str, int]:
    return {p.name: len(list(p.glob("*.jpg"))) for p in sorted(root.iterdir()) if p.is_dir()}


def test_dataset_push_list_show(store_uri, demo_root, capsys):
    code, out, err = run(capsys, "dataset", "push", str(demo_root / "test"), "--name", "faces-test",
                         "--version", "1.0.0", "--store", store_uri)
    assert code == 0
    assert out.strip() == f"{store_uri}/datasets/faces-test/1.0.0"
    assert "pushed 50 photos of 10 people: 50 uploaded, 0 already present" in err

    code, out, _ = run(capsys, "dataset", "list", "--store", store_uri)
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split() == ["NAME", "VERSION", "CREATED", "PEOPLE", "PHOTOS"]
    assert row.split()[:2] == ["faces-test", "1.0.0"]
    assert row.split()[3:] == ["10", "50"]

    code, out, _ = run(capsys, "dataset", "show", "faces-test", "--store", store_uri, "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["version"] == "1.0.0"
    assert shown["photos_per_person"] == people_counts(demo_root / "test")
    assert shown["bytes"] == sum(p.stat().st_size for p in (demo_root / "test").glob("*/*.jpg"))


def test_dataset_show_by_uri_lists_files(store_uri, demo_root, capsys):
    run(capsys, "dataset", "push", str(demo_root / "test"), "--name", "faces-test", "--version", "1.0.0",
        "--store", store_uri)
    code, out, _ = run(capsys, "dataset", "show", f"{store_uri}/datasets/faces-test/1.0.0", "--files")
    assert code == 0
    assert "photos: 50 of 10 people" in out
    assert "  Laura_Bush: 5" in out
    file_lines = [line for line in out.splitlines() if line.endswith(".jpg")]
    assert len(file_lines) == 50


def test_dataset_push_existing_version_fails(store_uri, demo_root, capsys):
    arguments = ["dataset", "push", str(demo_root / "test"), "--name", "faces-test", "--version", "1.0.0",
                 "--store", store_uri]
    assert run(capsys, *arguments)[0] == 0
    code, out, err = run(capsys, *arguments)
    assert code == 2
    assert out == ""
    assert err.strip().splitlines()[-1] == (
        f"kubeface: error: dataset faces-test version 1.0.0 already exists in {store_uri}; versions are "
        "immutable, so choose a new version")


def test_model_list_and_show(store_uri, tmp_path, capsys):
    folder = tmp_path / "model"
    (folder / "classifier").mkdir(parents=True)
    (folder / "classifier" / "classifier.json").write_text('{"classes": ["Ariel_Sharon", "Colin_Powell"]}')
    catalog = Catalog.open(store_uri)
    catalog.publish("models", "facenet-classifier", folder, MODEL_METADATA)
    catalog.publish("models", "facenet-classifier", folder,
                    {**MODEL_METADATA, "metrics": {"accuracy": 0.5}, "dataset": {}})

    code, out, _ = run(capsys, "model", "list", "--store", store_uri)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "CREATED", "ACCURACY", "DATASET"]
    assert [line.split()[1] for line in lines[1:]] == ["1.0.0", "1.0.1"]
    assert lines[1].split()[3:] == ["0.9800", "faces", "1.0.0"]
    assert lines[2].split()[3:] == ["0.5000", "-"]

    code, out, _ = run(capsys, "model", "show", "facenet-classifier", "1.0.0", "--store", store_uri)
    assert code == 0
    assert "accuracy: 0.9800 on 50 held-out photos (150 for training, gate 0.9)" in out
    assert f"dataset: faces 1.0.0 ({MODEL_METADATA['dataset']['uri']})" in out
    assert "people: 2: Ariel_Sharon, Colin_Powell" in out
    assert "libraries: kubeface 0.1.0, openvino 2026.4.1" in out
    manifest = catalog.manifest("models", "facenet-classifier", "1.0.0")
    assert f"created: {manifest['created']}" in out

    code, out, _ = run(capsys, "model", "show", f"{store_uri}/models/facenet-classifier/1.0.1", "--json")
    assert code == 0
    assert json.loads(out)["metrics"] == {"accuracy": 0.5}


def test_model_show_missing_version(store_uri, capsys):
    code, _, err = run(capsys, "model", "show", "facenet-classifier", "3.0.0", "--store", store_uri)
    assert code == 2
    assert "model facenet-classifier version 3.0.0 not found" in err
    assert "kubeface model list" in err
