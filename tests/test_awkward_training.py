"""Stage functions on messy real photo folders: what is aligned, skipped, dropped and reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import image_variants
from kubeface import stages
from kubeface.errors import DatasetError

MAIN_PERSON = "Colin_Powell"
OTHER_PERSON = "Hugo_Chavez"


def demo_photo(demo_root: Path, person: str, index: int = 0, split: str = "dataset") -> Path:
    return sorted((demo_root / split / person).iterdir())[index]


def copy_photos(demo_root: Path, person: str, target: Path, count: int, split: str = "dataset") -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted((demo_root / split / person).iterdir())[:count]:
        shutil.copy2(path, target / path.name)


def rows_by_path(folder: Path) -> dict[str, dict]:
    return {row["path"]: row for row in stages.read_json(folder / stages.INDEX_FILE)["rows"]}


@pytest.fixture(scope="module")
def awkward_align(ir_dir, demo_root, shared_data, tmp_path_factory):
    """Align a folder of awkward photos once; returns (dataset root, align output folder)."""
    root = tmp_path_factory.mktemp("awkward") / "dataset"
    ann = root / "Ann"
    ann.mkdir(parents=True)
    upright = Image.open(demo_photo(demo_root, MAIN_PERSON)).convert("RGB")
    (ann / "upright.png").write_bytes(image_variants.encode(upright, "PNG"))
    (ann / "rotated.png").write_bytes(image_variants.rotated_with_tag(upright, 6))
    other = Image.open(demo_photo(demo_root, OTHER_PERSON)).convert("RGB")
    image_variants.two_faces(upright, other).save(ann / "two_faces.png")
    image_variants.face_cut_by_border(upright).save(ann / "border.png")
    shutil.copy2(shared_data / "awkward" / "group" / "deepface_couple.jpg", ann / "couple.jpg")
    shutil.copy2(shared_data / "awkward" / "no_face" / "jasmcaus_cat.jpg", ann / "cat.jpg")
    (ann / "empty.jpg").write_bytes(b"")
    jpeg = image_variants.encode(upright, "JPEG", quality=90)
    (ann / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (ann / "text.jpg").write_bytes(b"not a photo\n")
    copy_photos(demo_root, OTHER_PERSON, root / "Bob", 2)
    output = root.parent / "align"
    stages.run_align(str(root), ir_dir, output)
    return root, output


def test_align_statuses(awkward_align):
    _, output = awkward_align
    rows = rows_by_path(output)
    statuses = {path: row["status"] for path, row in rows.items() if path.startswith("Ann/")}
    assert statuses == {
        "Ann/upright.png": "aligned", "Ann/rotated.png": "aligned", "Ann/two_faces.png": "aligned",
        "Ann/border.png": "aligned", "Ann/couple.jpg": "aligned", "Ann/cat.jpg": "no_face",
        "Ann/empty.jpg": "unreadable", "Ann/truncated.jpg": "unreadable", "Ann/text.jpg": "unreadable",
    }
    assert rows["Ann/cat.jpg"]["reason"] == "no face detected"
    assert rows["Ann/empty.jpg"]["reason"].endswith("got 0 bytes")
    assert rows["Ann/truncated.jpg"]["reason"].startswith("image data is truncated or corrupt")
    assert "no supported format (they start with b'not a ph')" in rows["Ann/text.jpg"]["reason"]


def test_align_exif_rotation_same_crop(awkward_align):
    _, output = awkward_align
    rows = rows_by_path(output)
    assert rows["Ann/rotated.png"]["exif_orientation"] == 6
    assert "exif_orientation" not in rows["Ann/upright.png"]
    assert rows["Ann/rotated.png"]["box"] == rows["Ann/upright.png"]["box"]
    aligned = [path for path, row in rows.items() if row["status"] == "aligned"]
    with np.load(output / stages.CROPS_FILE) as data:
        crops = dict(zip(aligned, data["crops"]))
    np.testing.assert_array_equal(crops["Ann/rotated.png"], crops["Ann/upright.png"])


def test_align_two_faces_choice(awkward_align):
    _, output = awkward_align
    row = rows_by_path(output)["Ann/two_faces.png"]
    assert row["faces"] == 2
    assert row["several_faces"] is True
    # The main photo was pasted at x = 110 .. 360; the smaller face sits at x < 110.
    x1, _, x2, _ = row["box"]
    assert 110 <= x1 < x2 <= 360


def test_align_group_photo_rule(awkward_align, detector, shared_data):
    _, output = awkward_align
    row = rows_by_path(output)["Ann/couple.jpg"]
    image = np.asarray(Image.open(shared_data / "awkward" / "group" / "deepface_couple.jpg").convert("RGB"))
    faces = detector.detect(image)
    assert row["faces"] == len(faces) == 2
    assert row["several_faces"] is True
    # The documented rule, computed here on its own: box area minus twice the squared offset
    # of the box centre from the image centre.
    height, width = image.shape[:2]
    weights = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1])
               - 2 * (((f.box[0] + f.box[2]) / 2 - width / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - height / 2) ** 2)
               for f in faces]
    expected = faces[int(np.argmax(weights))].box
    assert row["box"] == [round(float(v), 2) for v in expected]


def test_align_border_face_clipped(awkward_align):
    _, output = awkward_align
    rows = rows_by_path(output)
    row = rows["Ann/border.png"]
    assert row["box"][0] == 0.0
    assert row["several_faces"] is False
    aligned = [path for path, r in rows.items() if r["status"] == "aligned"]
    with np.load(output / stages.CROPS_FILE) as data:
        crop = data["crops"][aligned.index("Ann/border.png")]
    assert crop.shape == (160, 160, 3)
    assert crop.std() > 20


def test_train_reports_several_faces(awkward_align, ir_dir, tmp_path):
    _, output = awkward_align
    stages.run_embed(output, ir_dir, tmp_path / "embed")
    result = stages.run_train([tmp_path / "embed"], tmp_path / "train")
    assert result["people"] == ["Ann", "Bob"]
    split = stages.read_json(tmp_path / "train" / stages.SPLIT_FILE)
    several = {item["path"]: item["faces"] for item in split["several_faces"]}
    assert several == {"train:Ann/two_faces.png": 2, "train:Ann/couple.jpg": 2}
    unusable = {item["path"] for item in split["unusable"]}
    assert unusable == {"train:Ann/cat.jpg", "train:Ann/empty.jpg", "train:Ann/truncated.jpg", "train:Ann/text.jpg"}


def test_fetch_needs_two_people(demo_root, tmp_path):
    root = tmp_path / "dataset"
    copy_photos(demo_root, MAIN_PERSON, root / "Ann", 2)
    (root / "Bob").mkdir()
    (root / "Bob" / "notes.txt").write_text("no photos yet")
    with pytest.raises(DatasetError) as caught:
        stages.run_fetch(str(root), tmp_path / "fetch")
    assert str(caught.value) == (
        f"training needs photos of at least 2 people; found 1 in {root} (Ann); "
        "add person folders <root>/<person>/<photo>")


def test_embed_refused_without_two_faces(demo_root, shared_data, ir_dir, tmp_path):
    root = tmp_path / "dataset"
    copy_photos(demo_root, MAIN_PERSON, root / "Ann", 2)
    (root / "Bob").mkdir()
    shutil.copy2(shared_data / "awkward" / "no_face" / "opencv_fruits.jpg", root / "Bob" / "fruits.jpg")
    (root / "Bob" / "empty.jpg").write_bytes(b"")
    stages.run_fetch(str(root), tmp_path / "fetch")
    stages.run_align(str(tmp_path / "fetch" / "train"), ir_dir, tmp_path / "align")
    with pytest.raises(DatasetError) as caught:
        stages.run_embed(tmp_path / "align", ir_dir, tmp_path / "embed")
    message = str(caught.value)
    assert message.startswith("training needs photos of at least 2 people with a detected face; found 1 (Ann) "
                              "in 4 training photos (2 aligned, 1 no_face, 1 unreadable)")
    assert "train:Bob/fruits.jpg: no face detected" in message
    assert "train:Bob/empty.jpg: expected an image" in message
    assert not (tmp_path / "embed" / stages.EMBEDDINGS_FILE).exists()
