"""A damaged model fails to load, naming the file and its checksum; other versions load or raise a clear error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import train_model
from kubeface import cli
from kubeface.catalog import MANIFEST, file_entries, resolve_model
from kubeface.errors import ChecksumError, ModelError
from kubeface.imageio import read_image
from kubeface.recognizer import Recognizer
from kubeface.stages import library_versions

PEOPLE = ("Colin_Powell", "Hugo_Chavez", "Serena_Williams")


@pytest.fixture(scope="module")
def small_model(ir_dir, demo_root, tmp_path_factory) -> Path:
    """A model trained on 4 photos each of 3 demo people; returns its verified folder."""
    work = tmp_path_factory.mktemp("integrity")
    for split, count in (("dataset", 4), ("test", 2)):
        for person in PEOPLE:
            target = work / "data" / split / person
            target.mkdir(parents=True)
            for path in sorted((demo_root / split / person).iterdir())[:count]:
                shutil.copy2(path, target / path.name)
    uri = train_model(ir_dir, work / "data" / "dataset", work / "data" / "test", work / "run", str(work / "store"))
    return resolve_model(uri)


@pytest.fixture
def model_copy(small_model, tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(small_model, folder)
    return folder


def manifest_entry(folder: Path, relative: str) -> dict:
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return next(entry for entry in manifest["files"] if entry["path"] == relative)


def reseal(folder: Path) -> None:
    """Rewrite the manifest for the files as they are now, as another kubeface would have."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"] = file_entries(folder)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def test_missing_file(model_copy):
    entry = manifest_entry(model_copy, "classifier/classifier.npz")
    (model_copy / "classifier" / "classifier.npz").unlink()
    with pytest.raises(ChecksumError) as caught:
        Recognizer.from_uri(str(model_copy))
    assert str(caught.value) == (
        f"file classifier/classifier.npz listed in the manifest is missing from {model_copy} "
        f"(expected sha256 {entry['sha256']}, {entry['size']} bytes); fetch or publish the version again")


def test_truncated_file(model_copy):
    entry = manifest_entry(model_copy, "ir/facenet.bin")
    path = model_copy / "ir" / "facenet.bin"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ChecksumError) as caught:
        Recognizer.from_uri(str(model_copy))
    assert str(caught.value) == (
        f"file {path} has 1000 bytes, expected {entry['size']} (sha256 {entry['sha256']}); "
        "it is truncated or altered")


def test_altered_file(model_copy):
    entry = manifest_entry(model_copy, "classifier/classifier.json")
    path = model_copy / "classifier" / "classifier.json"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Colin_Powell", "Colin_Powelx"), encoding="utf-8")
    with pytest.raises(ChecksumError, match=rf"file {path} has sha256 [0-9a-f]{{64}}, "
                                            rf"expected {entry['sha256']}; it was altered"):
        Recognizer.from_uri(str(model_copy))


def test_damaged_model_cli(model_copy, demo_root, capsys):
    entry = manifest_entry(model_copy, "model.json")
    (model_copy / "model.json").unlink()
    photo = next((demo_root / "test" / PEOPLE[0]).iterdir())
    assert cli.main(["recognize", "--model", str(model_copy), str(photo)]) == 2
    error = capsys.readouterr().err
    assert "file model.json listed in the manifest is missing" in error
    assert entry["sha256"] in error


def test_manifest_path_trick(model_copy):
    edit_json(model_copy / MANIFEST, lambda m: m["files"].append({"path": "../outside", "sha256": "0" * 64, "size": 1}))
    with pytest.raises(ChecksumError, match=r"manifest lists an invalid file path '\.\./outside'"):
        Recognizer.from_uri(str(model_copy))


def test_other_versions_load(model_copy, small_model, demo_root):
    def older(model):
        model["libraries"].update({"kubeface": "0.0.9", "scikit-learn": "1.3.2", "numpy": "1.26.4"})

    edit_json(model_copy / "model.json", older)
    edit_json(model_copy / "classifier" / "classifier.json", lambda c: c["settings"].update(sklearn_version="1.3.2"))
    reseal(model_copy)
    recognizer = Recognizer.from_uri(str(model_copy))
    reference = Recognizer.from_uri(str(small_model))
    assert recognizer.classifier.classes == list(PEOPLE)
    for person in PEOPLE:
        photo = sorted((demo_root / "test" / person).iterdir())[0]
        image = read_image(photo)
        faces = recognizer.recognize(image).faces
        expected = reference.recognize(image).faces
        assert [f.label for f in faces] == [f.label for f in expected]
        assert person in [f.label for f in faces]
        assert [f.probability for f in faces] == [f.probability for f in expected]


def test_newer_model_format(model_copy):
    def newer(model):
        model["format"] = 2
        model["libraries"].update({"kubeface": "9.0.0", "scikit-learn": "2.0.0"})

    edit_json(model_copy / "model.json", newer)
    reseal(model_copy)
    installed = library_versions()
    with pytest.raises(ModelError) as caught:
        Recognizer.from_uri(str(model_copy))
    assert str(caught.value) == (
        f"{model_copy / 'model.json'} has model format 2, and this kubeface {installed['kubeface']} reads format 1; "
        f"versions that differ from the ones that wrote it: kubeface 9.0.0 (here {installed['kubeface']}), "
        f"scikit-learn 2.0.0 (here {installed['scikit-learn']}); install kubeface 9.0.0 to use it, or retrain")


def test_newer_classifier_format(model_copy):
    def newer(classifier):
        classifier["format"] = 2
        classifier["settings"]["sklearn_version"] = "2.0.0"

    edit_json(model_copy / "classifier" / "classifier.json", newer)
    reseal(model_copy)
    with pytest.raises(ModelError, match=r"has classifier format 2 \(linear-svm-ovo\), written with scikit-learn "
                                         r"2\.0\.0; this kubeface \S+ reads format 1"):
        Recognizer.from_uri(str(model_copy))


def test_pickled_arrays_rejected(model_copy):
    path = model_copy / "classifier" / "classifier.npz"
    with np.load(path) as arrays:
        contents = dict(arrays)
    contents["coef"] = np.array([object()], dtype=object)
    np.savez(path, **contents)
    reseal(model_copy)
    with pytest.raises(ModelError, match=rf"{path} cannot be read without unpickling, which kubeface never does"):
        Recognizer.from_uri(str(model_copy))
