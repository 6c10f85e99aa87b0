"""The predictor in this process: loading and its checks, one embedding batch per request, threads."""

from __future__ import annotations

import asyncio
import base64
import shutil

import numpy as np
import pytest

from kubeface.errors import ModelError
from kubeface.serving import checks
from kubeface.serving.kserve_import import kserve  # noqa: F401
from kubeface.serving.predictor import FacePredictor
from kubeface.serving.settings import ServingSettings

from kserve.errors import ModelNotReady


@pytest.fixture(scope="module")
def predictor(trained_model):
    loaded = FacePredictor("faces", trained_model)
    assert loaded.load() is True
    return loaded


def v1_body(*images: bytes) -> dict:
    return {"instances": [{"image": {"b64": base64.b64encode(data).decode()}} for data in images]}


async def run_request(predictor: FacePredictor, payload, headers=None):
    batch = await predictor.preprocess(payload, headers)
    result = await predictor.predict(batch, headers)
    return await predictor.postprocess(result, headers)


def test_ready_only_after_load(trained_model):
    fresh = FacePredictor("faces", trained_model)
    assert fresh.ready is False
    assert fresh.status() == f"model {trained_model} is still loading"
    with pytest.raises(ModelNotReady) as raised:
        asyncio.run(fresh(v1_body(b"x")))
    assert "is still loading" in str(raised.value)
    fresh.start()
    assert fresh.wait_loaded(timeout=300) is True
    assert fresh.status() == "model faces is ready"


def test_missing_model_not_ready_names_path(tmp_path):
    missing = tmp_path / "store" / "models" / "facenet-classifier" / "1.0.0"
    broken = FacePredictor("faces", str(missing))
    assert broken.load() is False
    assert broken.ready is False
    assert str(tmp_path / "store") in broken.load_error
    assert "not found" in broken.load_error
    assert broken.status() == broken.load_error


def test_altered_classifier_not_ready_names_file(trained_model, tmp_path):
    from kubeface.catalog import resolve_model

    copy = tmp_path / "model"
    shutil.copytree(resolve_model(trained_model), copy)
    arrays = copy / "classifier" / "classifier.npz"
    data = bytearray(arrays.read_bytes())
    data[-100] ^= 0xFF
    arrays.write_bytes(bytes(data))
    broken = FacePredictor("faces", str(copy))
    assert broken.load() is False
    assert "ChecksumError" in broken.load_error
    assert str(arrays) in broken.load_error
    assert broken.load() is False


def test_faces_of_request_embedded_once(predictor, demo_root):
    photos = [
        (demo_root / "test" / "Laura_Bush").glob("*.jpg"),
        (demo_root / "test" / "Colin_Powell").glob("*.jpg"),
    ]
    images = [sorted(found)[0].read_bytes() for found in photos]
    embedder = predictor.recognizer.embedder
    original = embedder.embed
    batches = []

    def counting_embed(crops, progress=None):
        batches.append(len(crops))
        return original(crops, progress)

    embedder.embed = counting_embed
    try:
        response = asyncio.run(run_request(predictor, v1_body(*images)))
    finally:
        embedder.embed = original
    faces = sum(len(item["faces"]) for item in response["predictions"])
    assert faces >= 2
    assert batches == [faces]


def test_v1_response_shape(predictor, demo_root):
    image = (demo_root / "test" / "Ariel_Sharon" / "Ariel_Sharon_0013.jpg").read_bytes()
    response = asyncio.run(run_request(predictor, v1_body(image)))
    assert set(response) == {"model_name", "model_version", "predictions"}
    assert response["model_name"] == "faces"
    (prediction,) = response["predictions"]
    assert set(prediction) == {"faces", "width", "height", "timings_ms"}
    assert set(prediction["faces"][0]) == {"box", "score", "landmarks", "label", "probability", "nearest", "distance"}
    assert prediction["faces"][0]["label"] == "Ariel_Sharon"


def test_json_bytes_with_charset_parsed(predictor, demo_root):
    import json

    image = (demo_root / "test" / "Ariel_Sharon" / "Ariel_Sharon_0013.jpg").read_bytes()
    payload = json.dumps(v1_body(image)).encode()
    response = asyncio.run(run_request(predictor, payload, {"content-type": "application/json; charset=utf-8"}))
    assert response["predictions"][0]["faces"][0]["label"] == "Ariel_Sharon"


def test_threads_follow_runtime_setting(predictor):
    from kubeface import runtime

    info = predictor.describe()
    assert info["inference_threads"] == runtime.inference_threads()
    assert info["compiled_threads"] == runtime.inference_threads()
    assert info["precision"] == "f32"


def test_threads_from_environment(trained_model, monkeypatch):
    monkeypatch.setenv("KUBEFACE_THREADS", "1")
    single = FacePredictor("faces", trained_model, settings=ServingSettings(embed_batch_size=8))
    assert single.load() is True
    assert single.describe()["compiled_threads"] == 1
    assert single.recognizer.embedder.batch_size == 8


def test_network_shape_check_names_file(predictor, tmp_path):
    with pytest.raises(ModelError) as raised:
        checks.check_network(predictor.recognizer.detector.rnet, tmp_path / "rnet.xml", [None, 48, 48, 3],
                             [[None, 4], [None, 2]])
    assert str(tmp_path / "rnet.xml") in str(raised.value)
    assert "expected input [?,48,48,3]" in str(raised.value)


def test_label_mismatch_fails_check(predictor):
    recognizer = predictor.recognizer
    saved = recognizer.info["labels"]
    recognizer.info["labels"] = list(reversed(saved))
    try:
        with pytest.raises(ModelError) as raised:
            checks.check_recognizer(recognizer)
    finally:
        recognizer.info["labels"] = saved
    assert "but the classifier has" in str(raised.value)


def test_warm_up_embedding_unit_norm(predictor):
    size = predictor.recognizer.align.image_size
    embedding = predictor.recognizer.embedder.embed(np.full((1, size, size, 3), 128, np.uint8))
    assert abs(float(np.linalg.norm(embedding[0])) - 1.0) < checks.NORM_TOLERANCE
    checks.warm_up(predictor.recognizer)


def test_settings_from_environment():
    settings = ServingSettings.from_env({"KUBEFACE_SERVE_MAX_IMAGES": "3"}, max_pixels=1000)
    assert settings == ServingSettings(max_images=3, max_pixels=1000)


def test_settings_reject_non_positive():
    from kubeface.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as raised:
        ServingSettings.from_env({"KUBEFACE_SERVE_MAX_BODY_BYTES": "0"})
    assert "max_body_bytes must be a positive integer; got 0" in str(raised.value)
