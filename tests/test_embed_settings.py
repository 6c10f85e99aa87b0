"""Embedding settings: standardization, mirrored views and their combination, on real crops."""

from __future__ import annotations

import numpy as np
import pytest

from kubeface import embed, runtime
from kubeface.align import AlignSettings, choose_face, crop_face
from kubeface.embed import Embedder, EmbedSettings
from kubeface.errors import InvalidInputError
from kubeface.imageio import read_image


def test_per_image_whitening_known_values():
    crops = np.zeros((2, 2, 2, 3), np.uint8)
    crops[0, 0] = 255  # half the pixels 255, half 0: mean 127.5, standard deviation 127.5
    crops[1] = 100  # a flat crop: the floored deviation keeps it at zero
    whitened = embed.prewhiten_per_image(crops)
    assert whitened[0, 0] == pytest.approx(np.ones((2, 3)))
    assert whitened[0, 1] == pytest.approx(-np.ones((2, 3)))
    assert whitened[1] == pytest.approx(np.zeros((2, 2, 3)))


def test_fixed_standardization_known_values():
    crops = np.array([0, 127, 255], np.uint8).reshape(1, 1, 3, 1)
    assert embed.standardize(crops, "fixed").ravel() == pytest.approx([-127.5 / 128, -0.5 / 128, 127.5 / 128])


def test_mirror_flips_columns():
    crops = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    mirrored = embed.mirror(crops)
    assert np.array_equal(mirrored[0, :, 0], crops[0, :, 1])
    assert np.array_equal(mirrored[0, :, 1], crops[0, :, 0])


def test_combine_mirrored_normalises_sum():
    combined = embed.combine_mirrored(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert combined == pytest.approx(np.array([[np.sqrt(0.5), np.sqrt(0.5)]]))


def test_settings_reject_unknown_standardization():
    with pytest.raises(InvalidInputError, match="standardization must be one of"):
        EmbedSettings(standardization="mean")


def test_settings_from_json_defaults_to_earlier_behaviour():
    assert EmbedSettings.from_json(None) == EmbedSettings(standardization="fixed", add_mirrored=False)
    assert EmbedSettings.from_json({"standardization": "per_image", "add_mirrored": True}) == EmbedSettings(
        standardization="per_image", add_mirrored=True)


@pytest.fixture(scope="module")
def demo_crops(demo_root, detector) -> np.ndarray:
    crops = []
    for photo in sorted((demo_root / "dataset").glob("*/*.jpg"))[:3]:
        image = read_image(photo)
        crops.append(crop_face(image, choose_face(detector.detect(image), image.shape), AlignSettings()))
    return np.stack(crops)


def test_per_image_embedding_matches_direct_inference(ir_dir, demo_crops):
    embedder = Embedder(ir_dir, batch_size=2, settings=EmbedSettings(standardization="per_image"))
    model = runtime.compile_ir(ir_dir / "facenet.xml")
    values = demo_crops.astype(np.float64)
    mean = values.mean(axis=(1, 2, 3), keepdims=True)
    std = values.std(axis=(1, 2, 3), keepdims=True)
    expected = model(((values - mean) / std).astype(np.float32))[model.outputs[0]]
    cosine = np.sum(embedder.embed(demo_crops) * expected, axis=1)
    assert cosine == pytest.approx(np.ones(3), abs=1e-5)


def test_mirrored_embedding_sums_both_views(ir_dir, embedder, demo_crops):
    mirrored = Embedder(ir_dir, batch_size=2, settings=EmbedSettings(add_mirrored=True)).embed(demo_crops)
    original = embedder.embed(demo_crops)
    flipped = embedder.embed(demo_crops[:, :, ::-1].copy())
    expected = original + flipped
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert mirrored == pytest.approx(expected, abs=1e-5)
    assert np.linalg.norm(mirrored, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    # A face and its mirror image are close, so the sum stays close to the original.
    assert np.sum(mirrored * original, axis=1).min() > 0.9
