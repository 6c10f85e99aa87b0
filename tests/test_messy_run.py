"""`kubeface run --json` through the KFP local runner on a messy copy of the demo photos.

The copy mixes in every kind of bad input the pipeline handles. Files: stray and hidden files,
text and damaged photos, a decompression bomb and duplicates. Folders: nested, empty, a person
without a face, a person with one photo and unusual names. Photos: other modes, rotated by
EXIF, very large, with two faces or cut by the border. The run must pass and publish, and its
summary must account for every file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import image_variants

RENAMED = {"Colin_Powell": unicodedata.normalize("NFD", "José Ñúñez"), "Hugo_Chavez": "张伟",
           "Tony_Blair": "Conan O'Brien"}
MESSY = unicodedata.normalize("NFD", "José Ñúñez")


def build_messy_copy(demo_root: Path, shared_data: Path, root: Path) -> tuple[Path, Path]:
    train, test = root / "train", root / "test"
    for source, target in (("dataset", train), ("test", test)):
        for person in sorted((demo_root / source).iterdir()):
            shutil.copytree(person, target / RENAMED.get(person.name, person.name))
    photos = sorted((train / MESSY).iterdir())
    portrait = Image.open(photos[0]).convert("RGB")
    other = Image.open(sorted((train / "张伟").iterdir())[0]).convert("RGB")
    jpeg = photos[0].read_bytes()

    # Files at the root and hidden files.
    (train / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (train / "README.txt").write_text("photos of the team\n", encoding="utf-8")
    shutil.copy2(photos[1], train / "stray.jpg")
    (test / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")

    # Files in a person folder that are not usable photos.
    folder = train / MESSY
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "notes.txt").write_text("taken in 2003\n", encoding="utf-8")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (folder / "text.jpg").write_text("this is not a photo\n", encoding="utf-8")
    (folder / "bomb.png").write_bytes(image_variants.png_header_only(10_000, 10_000))
    (folder / "raw").mkdir()
    shutil.copy2(photos[2], folder / "raw" / "original.jpg")
    shutil.copy2(photos[3], folder / "copy.jpg")

    # The same person in other encodings, orientations and sizes.
    (folder / "gray.png").write_bytes(image_variants.encode(portrait.convert("L"), "PNG"))
    (folder / "gray16.png").write_bytes(image_variants.gray16(Image.open(photos[4])))
    (folder / "cmyk.jpg").write_bytes(image_variants.encode(Image.open(photos[5]).convert("CMYK"), "JPEG", quality=95))
    palette = Image.open(photos[6]).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    (folder / "palette.png").write_bytes(image_variants.encode(palette, "PNG"))
    rgba = np.dstack([np.asarray(Image.open(photos[7]).convert("RGB")), np.full((250, 250), 255, np.uint8)])
    rgba[:30, :, 3] = 0
    (folder / "alpha.png").write_bytes(image_variants.encode(Image.fromarray(rgba), "PNG"))
    (folder / "rotated.png").write_bytes(image_variants.rotated_with_tag(Image.open(photos[8]).convert("RGB"), 6))
    large = Image.open(photos[9]).convert("RGB").resize((3000, 3000), Image.Resampling.BICUBIC)
    (folder / "large.jpg").write_bytes(image_variants.encode(large, "JPEG", quality=85))
    image_variants.two_faces(portrait, other).save(folder / "two_faces.png")
    image_variants.face_cut_by_border(Image.open(photos[10]).convert("RGB")).save(folder / "border.png")

    # Folders that are not people, or people who cannot be classes.
    (train / "Empty Person").mkdir()
    (train / "Nobody").mkdir()
    shutil.copy2(shared_data / "awkward" / "no_face" / "jasmcaus_cat.jpg", train / "Nobody" / "cat.jpg")
    shutil.copy2(shared_data / "awkward" / "no_face" / "opencv_fruits.jpg", train / "Nobody" / "fruits.jpg")
    (train / "bad\\name").mkdir()
    shutil.copy2(photos[11], train / "bad\\name" / "photo.jpg")
    (train / "Solo").mkdir()
    shutil.copy2(demo_root / "unknown" / "Aaron_Peirsol_0001.jpg", train / "Solo" / "only.jpg")

    # Test photos: a copy of a training photo and a person never trained.
    shutil.copy2(photos[12], test / MESSY / "seen in training.jpg")
    (test / "Stranger").mkdir()
    shutil.copy2(demo_root / "unknown" / "Andy_Roddick_0001.jpg", test / "Stranger" / "andy.jpg")
    return train, test


def all_files(root: Path, split: str) -> list[str]:
    return sorted(f"{split}:{path.relative_to(root).as_posix()}" for path in root.rglob("*") if path.is_file())


def run_cli(*arguments: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "kubeface.cli", *arguments], capture_output=True, text=True,
                          encoding="utf-8", env=environment, timeout=1800, check=False)


@pytest.fixture(scope="module")
def messy_run(ir_dir, demo_root, shared_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("messy")
    train, test = build_messy_copy(demo_root, shared_data, work / "data")
    result = run_cli("run", "--dataset", str(train), "--test-dataset", str(test), "--store", str(work / "store"),
                     "--pipeline-root", str(work / "runs"), "--model-name", "messy", "--json")
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return train, test, summary, result.stderr


@pytest.mark.slow
def test_messy_run_publishes(messy_run):
    _, _, summary, _ = messy_run
    assert summary["passed"] is True
    assert summary["published"] is True
    assert summary["model_uri"].endswith("/models/messy/1.0.0")
    assert summary["accuracy"] >= 0.9
    expected = sorted(["Ariel_Sharon", "José Ñúñez", "Donald_Rumsfeld", "Gerhard_Schroeder", "Gloria_Macapagal_Arroyo",
                       "张伟", "Junichiro_Koizumi", "Laura_Bush", "Serena_Williams", "Conan O'Brien", "Solo"])
    assert summary["labels"] == expected


@pytest.mark.slow
def test_messy_run_skipped_reasons(messy_run):
    _, _, summary, _ = messy_run
    skipped = {item["path"]: item["reason"] for item in summary["skipped"]}
    person = f"train:{MESSY}"
    assert skipped["train:.DS_Store"] == "hidden file or folder"
    assert skipped["test:.DS_Store"] == "hidden file or folder"
    assert skipped["train:README.txt"] == "file at the dataset root is not in a person folder"
    assert skipped["train:stray.jpg"] == "file at the dataset root is not in a person folder"
    assert skipped[f"{person}/.DS_Store"] == "hidden file"
    assert skipped[f"{person}/notes.txt"].startswith("not an image file (suffix '.txt')")
    assert skipped[f"{person}/raw"] == "nested folder inside a person folder"
    assert skipped[f"{person}/empty.jpg"].endswith("got 0 bytes")
    assert skipped[f"{person}/truncated.jpg"].startswith("image data is truncated or corrupt")
    assert "no supported format" in skipped[f"{person}/text.jpg"]
    assert skipped[f"{person}/bomb.png"].startswith("image is 10000x10000 = 100000000 pixels, above the limit")
    assert skipped[f"{person}/copy.jpg"].startswith(f"duplicate of {person}/")
    assert skipped["train:Empty Person/"].endswith("'Empty Person' is not a class")
    assert skipped["train:Nobody/cat.jpg"] == "no face detected"
    assert skipped["train:Nobody/fruits.jpg"] == "no face detected"
    assert skipped["train:Nobody/"] == (
        "person dropped: none of 2 training photos is usable (2 no_face); 'Nobody' is not a class")
    assert skipped["train:bad\\name"].startswith("invalid person name 'bad\\\\name'")
    assert skipped[f"test:{MESSY}/seen in training.jpg"].startswith(f"duplicate of {person}/")
    assert skipped["test:Stranger/andy.jpg"] == "person 'Stranger' has no training photo"


@pytest.mark.slow
def test_messy_run_every_file_counted(messy_run):
    train, test, summary, _ = messy_run
    listed = {item["path"] for item in summary["skipped"]}
    files = all_files(train, "train") + all_files(test, "test")
    used = []
    for path in files:
        split, relative = path.split(":", 1)
        folders = [f"{split}:{'/'.join(relative.split('/')[:depth])}" for depth in range(1, relative.count("/") + 1)]
        if path in listed or any(folder in listed or f"{folder}/" in listed for folder in folders):
            continue
        used.append(path)
    assert len(used) == summary["n_train"] + summary["n_test"]


@pytest.mark.slow
def test_messy_run_reports_choices(messy_run):
    _, _, summary, stderr = messy_run
    several = {item["path"]: item["faces"] for item in summary["several_faces"]}
    assert several[f"train:{MESSY}/two_faces.png"] == 2
    assert summary["notes"] == [{"path": "train:Solo/only.jpg",
                                 "reason": "'Solo' has one usable photo: used for training only"}]
    assert f"several faces: {len(several)} photos" in stderr
    assert "note: train:Solo/only.jpg: 'Solo' has one usable photo" in stderr


@pytest.mark.slow
def test_messy_model_recognizes(messy_run):
    _, test, summary, _ = messy_run
    photo = sorted((test / "张伟").iterdir())[0]
    result = run_cli("recognize", "--model", summary["model_uri"], "--json", str(photo))
    assert result.returncode == 0, result.stderr[-2000:]
    output = json.loads(result.stdout.strip())
    assert "张伟" in [face["label"] for face in output["faces"]]
