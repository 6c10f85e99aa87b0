"""Embedding photo files through the pipeline's own code, the no-face fallback and the disk cache."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from kubeface import stages
from kubeface.align import AlignSettings, centre_face, crop_face
from kubeface.embed import EmbedSettings
from kubeface.imageio import read_image
from kubeface.photo_embeddings import PhotoEmbedder

PEOPLE = ("Ariel_Sharon", "Colin_Powell")


@pytest.fixture
def photo_root(tmp_path, demo_root):
    """Two photos of each of two demo people, plus one photo without a face, in LFW's layout."""
    root = tmp_path / "photos"
    for person in PEOPLE:
        (root / person).mkdir(parents=True)
        for photo in sorted((demo_root / "dataset" / person).glob("*.jpg"))[:2]:
            shutil.copy(photo, root / person / photo.name)
    (root / "Blank_Wall").mkdir()
    gradient = np.tile(np.linspace(40, 220, 250, dtype=np.uint8), (250, 1))
    buffer = io.BytesIO()
    Image.fromarray(np.stack([gradient] * 3, axis=2)).save(buffer, format="JPEG")
    (root / "Blank_Wall" / "Blank_Wall_0001.jpg").write_bytes(buffer.getvalue())
    return root


def _names(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.jpg"))


def test_embeddings_match_pipeline_stages(ir_dir, photo_root, tmp_path):
    names = [n for n in _names(photo_root) if not n.startswith("Blank_Wall")]
    result = PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(), cache_dir=tmp_path / "cache").embed_files(
        photo_root, names)
    dataset = tmp_path / "dataset"
    for name in names:
        (dataset / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo_root / name, dataset / name)
    stages.run_align(str(dataset), ir_dir, tmp_path / "align")
    stages.run_embed(tmp_path / "align", ir_dir, tmp_path / "embed")
    rows, expected, _ = stages.collect_embeddings([tmp_path / "embed"])
    assert [r["path"] for r in rows] == names
    assert result.names == names
    # The cache keeps landmarks as float32, so the warp can move a pixel value by one level.
    assert np.sum(result.embeddings * expected, axis=1).min() > 0.99999
    assert result.embeddings == pytest.approx(expected, abs=1e-4)
    assert result.no_face == []


def test_no_face_falls_back_to_centre_crop(ir_dir, embedder, photo_root, tmp_path):
    name = "Blank_Wall/Blank_Wall_0001.jpg"
    result = PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(), cache_dir=tmp_path / "cache").embed_files(
        photo_root, [name])
    assert result.no_face == [name]
    image = read_image(photo_root / name)
    expected = embedder.embed(crop_face(image, centre_face(image.shape), AlignSettings())[None])
    assert result.embeddings == pytest.approx(expected, abs=1e-5)


def test_second_run_comes_from_cache(ir_dir, photo_root, tmp_path):
    names = _names(photo_root)
    cache = tmp_path / "cache"
    first = PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(), cache_dir=cache).embed_files(photo_root, names)
    assert (first.detected, first.embedded) == (5, 5)
    second = PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(), cache_dir=cache).embed_files(photo_root, names)
    assert (second.detected, second.embedded) == (0, 0)
    assert np.array_equal(second.embeddings, first.embeddings)
    assert second.no_face == ["Blank_Wall/Blank_Wall_0001.jpg"]


def test_changed_photo_is_embedded_again(ir_dir, photo_root, tmp_path):
    names = _names(photo_root)
    cache = tmp_path / "cache"
    first = PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(), cache_dir=cache).embed_files(photo_root, names)
    # Replace one of Ariel Sharon's photos by one of Colin Powell's, under the same name.
    shutil.copy(photo_root / names[2], photo_root / names[0])
    second = PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(), cache_dir=cache).embed_files(photo_root, names)
    assert (second.detected, second.embedded) == (1, 1)
    assert second.embeddings[0] == pytest.approx(first.embeddings[2], abs=1e-6)
    assert np.array_equal(second.embeddings[1:], first.embeddings[1:])


def test_other_settings_reuse_detections_and_views(ir_dir, photo_root, tmp_path):
    names = _names(photo_root)
    cache = tmp_path / "cache"
    PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(), cache_dir=cache).embed_files(photo_root, names)
    # Mirroring adds one view: the original view comes from the cache, no photo is detected again.
    mirrored = PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(add_mirrored=True),
                             cache_dir=cache).embed_files(photo_root, names)
    assert (mirrored.detected, mirrored.embedded) == (0, 5)
    # Another margin needs new crops of every photo, but no detection.
    wider = PhotoEmbedder(ir_dir, AlignSettings(margin=44), EmbedSettings(), cache_dir=cache).embed_files(
        photo_root, names)
    assert (wider.detected, wider.embedded) == (0, 5)


def test_without_cache_writes_nothing(ir_dir, photo_root, tmp_path):
    cache = tmp_path / "cache"
    PhotoEmbedder(ir_dir, AlignSettings(), EmbedSettings(), cache_dir=cache, use_cache=False).embed_files(
        photo_root, _names(photo_root)[:1])
    assert not cache.exists()
