"""Person names with spaces, apostrophes and other scripts stay exact from folders to CLI output.

One small model is trained in process from demo photos under renamed folders, with a person
whose photos all fail, a person with one photo and duplicate photos mixed in.
"""

from __future__ import annotations

import json
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import image_variants
from conftest import train_model
from kubeface import cli, dataset_catalog, datasets, stages
from kubeface.catalog import resolve_model
from kubeface.publish import summary
from kubeface.store import LocalStore

# Folder name -> demo person whose photos it gets.
PEOPLE = {
    "José Ñúñez": "Colin_Powell",
    "张伟": "Hugo_Chavez",
    "Conan O'Brien": "Tony_Blair",
    "Mary Ann Smith": "Laura_Bush",
}
SOLO = "Solo Person"
NOBODY = "Nobody Here"
TRAIN_PHOTOS = 6
TEST_PHOTOS = 3


def build_dataset(demo_root: Path, shared_data: Path, root: Path) -> None:
    for name, source in PEOPLE.items():
        # macOS stores names decomposed (NFD); the label must still be the composed form.
        folder = unicodedata.normalize("NFD", name) if name == "José Ñúñez" else name
        for split, count in (("dataset", TRAIN_PHOTOS), ("test", TEST_PHOTOS)):
            target = root / split / folder
            target.mkdir(parents=True)
            for path in sorted((demo_root / split / source).iterdir())[:count]:
                shutil.copy2(path, target / path.name)
    first = sorted((root / "dataset" / "张伟").iterdir())[0]
    shutil.copy2(first, root / "dataset" / "张伟" / "copy.jpg")
    shutil.copy2(first, root / "test" / "张伟" / "same as training.jpg")
    (root / "dataset" / SOLO).mkdir()
    shutil.copy2(sorted((demo_root / "dataset" / "Serena_Williams").iterdir())[0], root / "dataset" / SOLO / "only.jpg")
    (root / "dataset" / NOBODY).mkdir()
    shutil.copy2(shared_data / "awkward" / "no_face" / "jasmcaus_cat.jpg", root / "dataset" / NOBODY / "cat.jpg")
    (root / "dataset" / NOBODY / "broken.jpg").write_bytes(first.read_bytes()[:500])


@pytest.fixture(scope="module")
def names_model(ir_dir, demo_root, shared_data, tmp_path_factory):
    """Train and publish once; returns (model URI, work folder, data root)."""
    work = tmp_path_factory.mktemp("names")
    build_dataset(demo_root, shared_data, work / "data")
    uri = train_model(ir_dir, work / "data" / "dataset", work / "data" / "test", work / "run", str(work / "store"))
    return uri, work / "run", work / "data"


def expected_labels() -> list[str]:
    return sorted([*PEOPLE, SOLO])


def test_labels_exact(names_model):
    uri, _, _ = names_model
    folder = resolve_model(uri)
    model = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    classifier = json.loads((folder / "classifier" / "classifier.json").read_text(encoding="utf-8"))
    assert model["labels"] == expected_labels()
    assert classifier["classes"] == expected_labels()
    assert NOBODY not in model["labels"]
    # The files store the names as UTF-8 text, not as \u escapes.
    assert "张伟" in (folder / "model.json").read_text(encoding="utf-8")


def test_confusion_matrix_names(names_model):
    _, run, _ = names_model
    report = stages.read_json(run / "validate" / stages.REPORT_FILE)
    assert report["classes"] == expected_labels()
    assert sorted(report["per_person"]) == expected_labels()
    matrix = np.asarray(report["confusion_matrix"])
    zhang = report["classes"].index("张伟")
    # The copy of a training photo in the test folder is not scored.
    assert matrix[zhang].sum() == TEST_PHOTOS
    assert matrix[zhang, zhang] == TEST_PHOTOS
    assert matrix[report["classes"].index(SOLO)].sum() == 0
    assert report["n_test"] == len(PEOPLE) * TEST_PHOTOS
    assert report["accuracy"] == 1.0


def test_summary_reports_problems(names_model):
    _, run, _ = names_model
    result = summary(run / "train", run / "validate", "")
    skipped = {item["path"]: item["reason"] for item in result["skipped"]}
    assert skipped[f"train:{NOBODY}/"] == (
        "person dropped: none of 2 training photos is usable (1 no_face, 1 unreadable); 'Nobody Here' is not a class")
    assert skipped[f"train:{NOBODY}/cat.jpg"] == "no face detected"
    assert skipped[f"train:{NOBODY}/broken.jpg"].startswith("image data is truncated or corrupt (500 bytes)")
    first = sorted(p.name for p in (run / "fetch" / "train" / "张伟").iterdir())[0]
    assert skipped["train:张伟/copy.jpg"] == f"duplicate of train:张伟/{first}"
    assert skipped["test:张伟/same as training.jpg"] == f"duplicate of train:张伟/{first}"
    assert result["notes"] == [{"path": f"train:{SOLO}/only.jpg",
                                "reason": "'Solo Person' has one usable photo: used for training only"}]
    assert result["labels"] == expected_labels()
    text = json.dumps(result, ensure_ascii=False)
    assert '"张伟"' in text
    assert '"José Ñúñez"' in text
    assert json.loads(text)["labels"] == expected_labels()


def test_recognize_cli_json(names_model, capsys):
    uri, _, data = names_model
    photos = sorted((data / "test" / "张伟").iterdir())
    assert cli.main(["recognize", "--model", uri, "--json", str(photos[0])]) == 0
    output = json.loads(capsys.readouterr().out.strip())
    assert [face["label"] for face in output["faces"]] == ["张伟"]


def test_recognize_cli_text(names_model, capsys):
    uri, _, data = names_model
    photo = sorted((data / "test" / "Conan O'Brien").iterdir())[0]
    assert cli.main(["recognize", "--model", uri, str(photo)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{photo}: Conan O'Brien (")


def test_recognize_exif_rotated(names_model, tmp_path, capsys):
    uri, _, data = names_model
    photo = sorted((data / "test" / "Mary Ann Smith").iterdir())[0]
    upright = Image.open(photo).convert("RGB")
    (tmp_path / "upright.png").write_bytes(image_variants.encode(upright, "PNG"))
    (tmp_path / "rotated.png").write_bytes(image_variants.rotated_with_tag(upright, 8))
    assert cli.main(["recognize", "--model", uri, "--json", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    by_name = {Path(line["image"]).name: line for line in lines}
    rotated, plain = by_name["rotated.png"], by_name["upright.png"]
    assert rotated["faces"] == plain["faces"]
    assert (rotated["width"], rotated["height"]) == (250, 250)
    # LFW photos may show a second face in the background; the portrait is the largest.
    largest = max(rotated["faces"], key=lambda face: (face["box"][2] - face["box"][0]) * (face["box"][3] - face["box"][1]))
    assert largest["label"] == "Mary Ann Smith"


def test_store_keys_exact(names_model, tmp_path):
    _, _, data = names_model
    store_root = tmp_path / "store"
    uri = dataset_catalog.push(data / "dataset", "names", "1.0.0", str(store_root)).uri
    keys = LocalStore(store_root).list("datasets/names/1.0.0/")
    prefix = "datasets/names/1.0.0/"
    folders = {key[len(prefix):].split("/")[0] for key in keys if key.count("/") == 4}
    nfd = unicodedata.normalize("NFD", "José Ñúñez")
    assert folders == {nfd, "张伟", "Conan O'Brien", "Mary Ann Smith", SOLO, NOBODY}
    folder, identity = dataset_catalog.resolve(uri)
    assert identity["name"] == "names"
    photos, _ = datasets.scan_folder(folder, datasets.TRAIN)
    assert sorted({p.person for p in photos}) == sorted([*PEOPLE, SOLO, NOBODY])
