"""The predictor loading a model from an S3 store that cannot be reached at first.

A pod often starts while its S3 endpoint is still coming up. The predictor keeps retrying a
store it cannot reach, stays not ready meanwhile with the reason in its status, and
becomes ready once the store is back. Other load failures stay final (test_serving_predictor).
Every test runs its own SeaweedFS on 127.0.0.1 and stops it to make the outage.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest

from kubeface.catalog import split_model_uri
from kubeface.s3 import S3Store
from kubeface.serving.kserve_import import kserve  # noqa: F401
from kubeface.serving.predictor import FacePredictor
from kubeface.serving.settings import ServingSettings

pytestmark = pytest.mark.slow

PERSON = "Colin_Powell"
PHOTO = "Colin_Powell/Colin_Powell_0038.jpg"


@pytest.fixture
def s3_model(trained_model, private_seaweedfs, monkeypatch, tmp_path) -> str:
    """Copy the locally published demo model into a private SeaweedFS; returns its s3:// URI."""
    for key, value in private_seaweedfs.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBEFACE_S3_MAX_ATTEMPTS", "1")  # each load attempt fails fast while the store is down
    monkeypatch.setenv("KUBEFACE_CACHE", str(tmp_path / "cache"))  # so the model is downloaded, not reused
    local_root, name, version = split_model_uri(trained_model)
    store_uri = private_seaweedfs.store_uri()
    store = S3Store.from_uri(store_uri)
    for path in sorted(Path(local_root).rglob("*")):
        if path.is_file():
            store.write_bytes(path.relative_to(local_root).as_posix(), path.read_bytes())
    return f"{store_uri}/models/{name}/{version}"


def wait_until(condition, timeout: float, awaited: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {awaited}")
        time.sleep(0.2)


def recognize(predictor: FacePredictor, photo: bytes) -> dict:
    body = {"instances": [{"image": {"b64": base64.b64encode(photo).decode()}}]}

    async def run():
        batch = await predictor.preprocess(body)
        return await predictor.postprocess(await predictor.predict(batch))

    response = asyncio.run(run())
    faces = response["predictions"][0]["faces"]
    return max(faces, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))


def test_load_waits_for_store_then_serves(s3_model, private_seaweedfs, demo_root):
    private_seaweedfs.stop()
    predictor = FacePredictor("faces", s3_model, ServingSettings(load_retry_seconds=300))
    predictor.start()
    try:
        wait_until(lambda: predictor.waiting_for_store is not None, 60, "the first failed attempt")
        assert predictor.ready is False
        status = predictor.status()
        assert status.startswith(f"model {s3_model} is waiting for its store: ")
        assert private_seaweedfs.endpoint in status
        assert predictor.load_error is None

        private_seaweedfs.start()
        assert predictor.wait_loaded(timeout=240) is True
        assert predictor.status() == "model faces is ready"
        assert predictor.waiting_for_store is None
        face = recognize(predictor, (demo_root / "test" / PHOTO).read_bytes())
        assert face["label"] == PERSON
    finally:
        predictor.stop()
        predictor.wait_loaded(timeout=60)


def test_load_gives_up_after_retry_window(s3_model, private_seaweedfs):
    private_seaweedfs.stop()
    predictor = FacePredictor("faces", s3_model, ServingSettings(load_retry_seconds=1))
    started = time.monotonic()
    assert predictor.load() is False
    assert time.monotonic() - started < 60
    assert predictor.ready is False
    assert predictor.load_error.startswith(f"model {s3_model} failed to load: StoreUnavailableError: ")
    assert private_seaweedfs.endpoint in predictor.load_error
    assert "gave up after 1 attempt in" in predictor.load_error
    assert predictor.status() == predictor.load_error
    # A final failure is not retried, even once the store is back.
    private_seaweedfs.start()
    assert predictor.load() is False


def test_stop_while_waiting_for_store_ends_load(s3_model, private_seaweedfs):
    private_seaweedfs.stop()
    predictor = FacePredictor("faces", s3_model, ServingSettings(load_retry_seconds=300))
    predictor.start()
    wait_until(lambda: predictor.waiting_for_store is not None, 60, "the first failed attempt")
    predictor.stop()
    assert predictor.wait_loaded(timeout=30) is False
    assert predictor._loader.is_alive() is False
    assert predictor.load_error.endswith("(stopped while waiting for the store)")
