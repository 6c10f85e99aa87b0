"""Shared fixtures: converted IRs, the bundled demo photos, a trained model, the large data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Imported before any test module imports openvino, so that OpenVINO's usage telemetry stays off.
import kubeface  # noqa: F401
from s3server import private_seaweedfs, s3_env, seaweedfs, store_uri  # noqa: F401 (fixtures for the S3 tests)

DATA_ENV = "KUBEFACE_TEST_DATA"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs the whole pipeline or a server")


def pytest_sessionfinish(session, exitstatus):
    """With KUBEFACE_STRICT_SKIPS=1 (set by CI), any skipped test fails the run."""
    if os.environ.get("KUBEFACE_STRICT_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and session.exitstatus == 0:
        if reporter:
            reporter.write_line(f"KUBEFACE_STRICT_SKIPS=1: {skipped} skipped tests count as a failure", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory):
    """Keep the tests' stores, runs and caches out of the user's home folder."""
    home = tmp_path_factory.mktemp("kubeface-home")
    saved = {k: os.environ.get(k) for k in ("KUBEFACE_HOME", "KUBEFACE_STORE", "KUBEFACE_CACHE")}
    os.environ["KUBEFACE_HOME"] = str(home)
    os.environ["KUBEFACE_STORE"] = str(home / "store")
    os.environ.setdefault("KUBEFACE_CACHE", str(home / "cache"))
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def ir_dir(isolated_home) -> Path:
    from kubeface import convert

    return convert.ensure_converted("FP32")


@pytest.fixture(scope="session")
def demo_root() -> Path:
    from kubeface.localrun import bundled_demo

    return bundled_demo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The large photo sets; tests that need them skip without KUBEFACE_TEST_DATA."""
    value = os.environ.get(DATA_ENV)
    if not value:
        pytest.skip(f"set {DATA_ENV} to the folder holding lfw_deepfunneled/, awkward/ and detect_boxes/")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"{DATA_ENV}={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def detector(ir_dir):
    from kubeface.detect import Detector

    return Detector(ir_dir)


@pytest.fixture(scope="session")
def embedder(ir_dir):
    from kubeface.embed import Embedder

    return Embedder(ir_dir)


def train_model(ir_dir: Path, dataset: Path, test_dataset: Path | None, work: Path, store: str,
                name: str = "facenet-classifier", min_accuracy: float = 0.9) -> str:
    """Run every stage function in this process (no KFP runner) and publish; returns the model URI."""
    from kubeface import stages
    from kubeface.publish import run_publish
    from kubeface.validation import run_validate

    fetched = work / "fetch"
    stages.run_fetch(str(dataset), fetched, str(test_dataset) if test_dataset else "")
    stages.run_align(str(fetched / "train"), ir_dir, work / "align", test_dataset_uri=stages.test_folder(fetched))
    stages.run_embed(work / "align", ir_dir, work / "embed")
    stages.run_train([work / "embed"], work / "train")
    run_validate(work / "train", work / "validate", min_accuracy)
    return run_publish(store, name, ir_dir, work / "train", work / "validate")


@pytest.fixture(scope="session")
def trained_model(ir_dir, demo_root, tmp_path_factory) -> str:
    """A model trained from the bundled demo photos and published to a local store."""
    work = tmp_path_factory.mktemp("trained")
    return train_model(ir_dir, demo_root / "dataset", demo_root / "test", work, str(work / "store"))


@pytest.fixture(scope="session")
def recognizer(trained_model):
    from kubeface.recognizer import Recognizer

    return Recognizer.from_uri(trained_model)
