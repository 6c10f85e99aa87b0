"""`kubeface enroll`: a new model version with one more person, from stored embeddings."""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from kubeface.catalog import Catalog, resolve_model, split_model_uri, verify_folder
from kubeface.cli import main
from kubeface.enroll import destination, enroll
from kubeface.errors import DatasetError, InvalidInputError
from kubeface.imageio import read_image
from kubeface.recognizer import Recognizer

PERSON = "Vladimir_Putin"


@pytest.fixture(scope="module")
def parent(ir_dir, demo_root, tmp_path_factory) -> str:
    """A model of the 10 demo people in a store of its own, with the demo's unknown people."""
    from growth import train_version

    work = tmp_path_factory.mktemp("enroll-parent")
    result = train_version(
        ir_dir,
        demo_root / "dataset",
        demo_root / "test",
        work,
        str(work / "store"),
        "faces",
        unknown_dataset=demo_root / "unknown",
        use_cache=False,
    )
    return result["model_uri"]


@pytest.fixture(scope="module")
def enrolled(parent, demo_root) -> dict:
    photos = demo_root / "new_person" / "dataset" / PERSON
    folder = Path(resolve_model(parent))
    manifest = (folder / "manifest.json").read_bytes()
    result = enroll(parent, PERSON, sorted(photos.glob("*.jpg")))
    return {"result": result, "parent_manifest": manifest, "parent_folder": folder}


def test_enroll_publishes_next_version(enrolled, parent):
    result = enrolled["result"]
    store, name, version = split_model_uri(parent)
    assert result["model_uri"] == f"{store}/models/{name}/1.0.1"
    assert result["parent_version"] == version == "1.0.0"
    assert result["new_person"] is True
    assert result["added_photos"] == 15
    assert PERSON in result["labels"]
    assert len(result["labels"]) == 11


def test_enrolled_version_names_new_person(enrolled, demo_root):
    recognizer = Recognizer.from_uri(enrolled["result"]["model_uri"])
    photos = sorted((demo_root / "new_person" / "test" / PERSON).glob("*.jpg"))
    assert len(photos) == 5
    for photo in photos:
        faces = recognizer.recognize(read_image(photo)).faces
        assert [f.label for f in faces] == [PERSON], photo.name


def test_enrolled_version_keeps_known_people(enrolled, demo_root):
    recognizer = Recognizer.from_uri(enrolled["result"]["model_uri"])
    for person in ("Laura_Bush", "Hugo_Chavez"):
        for photo in sorted((demo_root / "test" / person).glob("*.jpg")):
            faces = recognizer.recognize(read_image(photo)).faces
            main_face = max(faces, key=lambda f: f.width * f.height)
            assert main_face.label == person, photo.name


def test_enrolled_gallery_extends_parent(enrolled):
    parent = np.load(enrolled["parent_folder"] / "classifier" / "gallery.npz")
    folder = resolve_model(enrolled["result"]["model_uri"])
    child = np.load(folder / "classifier" / "gallery.npz")
    assert np.array_equal(child["embeddings"][: len(parent["embeddings"])], parent["embeddings"])
    assert len(child["embeddings"]) == len(parent["embeddings"]) + 15
    assert np.array_equal(child["unknown"], parent["unknown"])
    info = json.loads((folder / "model.json").read_text())
    assert info["enrollment"]["person"] == PERSON
    assert info["metrics"]["enrolled"] is True
    assert info["metrics"]["accuracy"] is None
    assert info["rejection"]["calibration"]["unknown_faces"] == 20


def test_parent_version_untouched(enrolled):
    folder = enrolled["parent_folder"]
    assert (folder / "manifest.json").read_bytes() == enrolled["parent_manifest"]
    verify_folder(folder, json.loads(enrolled["parent_manifest"]))
    assert PERSON not in json.loads((folder / "model.json").read_text())["labels"]


def test_enroll_reports_photos_without_face(parent, demo_root, tmp_path):
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    photos = sorted((demo_root / "new_person" / "dataset" / PERSON).glob("*.jpg"))[:3]
    result = enroll(
        parent,
        PERSON,
        photos + [blank, photos[0]],
        store_uri=str(tmp_path / "other"),
        model_name="faces-plus",
    )
    statuses = {Path(p["path"]).name: p["status"] for p in result["photos"]}
    assert statuses["blank.png"] == "no_face"
    assert [p["status"] for p in result["photos"]].count("duplicate") == 1
    assert result["added_photos"] == 3
    assert result["model_uri"] == f"{tmp_path / 'other'}/models/faces-plus/1.0.0"


def test_enroll_without_any_face_fails(parent, tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    with pytest.raises(DatasetError, match="no face found in the 1 photos of 'Nobody'"):
        enroll(parent, "Nobody", [blank])


def test_enroll_rejects_path_in_person_name(parent, demo_root):
    with pytest.raises(DatasetError, match="invalid person name '../x'"):
        enroll(parent, "../x", [demo_root / "unknown" / "Holly_Hunter_0001.jpg"])


def test_enroll_rejects_other_persons_training_photos(parent, demo_root):
    photos = sorted((demo_root / "dataset" / "Tony_Blair").glob("*.jpg"))[:3]
    versions_before = Catalog.open(split_model_uri(parent)[0]).versions("models", "faces")
    with pytest.raises(DatasetError) as caught:
        enroll(parent, "Fake_Tony", photos)
    message = str(caught.value)
    assert message.startswith("3 of the photos given for 'Fake_Tony' are training photos of other people: ")
    assert message.count("to a photo of Tony_Blair)") == 3
    assert Catalog.open(split_model_uri(parent)[0]).versions("models", "faces") == versions_before


def test_enroll_name_forms_are_one_person(parent, demo_root, tmp_path):
    store = str(tmp_path / "store")
    photos = sorted((demo_root / "new_person" / "dataset" / PERSON).glob("*.jpg"))
    composed = "Jos\u00e9 \u00d1\u00fa\u00f1ez"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    first = enroll(parent, composed, photos[:4], store_uri=store, model_name="names")
    second = enroll(first["model_uri"], decomposed, photos[4:8], store_uri=store, model_name="names")
    assert second["new_person"] is False
    assert second["labels"].count(composed) == 1
    assert decomposed not in second["labels"]


def test_model_folder_needs_destination(tmp_path):
    with pytest.raises(InvalidInputError, match="pass --store and --model-name"):
        destination(str(tmp_path), None, None)


def test_enroll_command(parent, demo_root, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(resolve_model(parent), store / "models" / "faces" / "1.0.0")
    model = f"{store}/models/faces/1.0.0"
    folder = demo_root / "new_person" / "dataset" / PERSON
    code = main(["enroll", "--model", model, "--person", PERSON, str(folder), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert result["model_uri"] == f"{store}/models/faces/1.0.1"
    assert result["added_photos"] == 15
    assert f"enrolled {PERSON}: 15 of 15 photos used" in captured.err
    code = main(
        [
            "recognize",
            "--model",
            result["model_uri"],
            str(
                demo_root
                / "new_person"
                / "test"
                / PERSON
                / sorted(p.name for p in (demo_root / "new_person" / "test" / PERSON).iterdir())[0]
            ),
        ]
    )
    assert code == 0
    assert f": {PERSON} (" in capsys.readouterr().out
