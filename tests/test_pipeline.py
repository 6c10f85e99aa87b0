"""The pipeline: its compiled YAML, and whole runs through the KFP local runner via the CLI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubeface.pipelines.training import COMPILED_YAML, compile_pipeline


def kubeface(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBEFACE_HOME=str(env_home), KUBEFACE_STORE=str(env_home / "store"))
    return subprocess.run([sys.executable, "-m", "kubeface.cli", *args], capture_output=True, text=True,
                          env=env, timeout=900)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_compiled_yaml_is_fresh(tmp_path):
    fresh = compile_pipeline(tmp_path / "fresh.yaml")
    assert fresh.read_text() == COMPILED_YAML.read_text(), (
        "pipelines/kubeface-train.yaml is stale; run: kubeface compile")


@pytest.mark.slow
def test_run_demo_publishes_and_recognizes(tmp_path, demo_root):
    result = kubeface("run", "--json", "--model-name", "demo-test", env_home=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json(result.stdout)
    assert summary["passed"] is True
    assert summary["published"] is True
    assert summary["accuracy"] >= 0.96
    assert summary["n_train"] == 150
    assert summary["n_test"] == 50
    assert summary["skipped"] == []
    assert summary["labels"] == sorted(p.name for p in (demo_root / "dataset").iterdir())
    assert summary["model_uri"] == str(tmp_path / "store" / "models" / "demo-test" / "1.0.0")
    assert "stage publish: done" in result.stderr

    recognized = kubeface("recognize", "--json", "--model", summary["model_uri"], str(demo_root / "test"),
                          env_home=tmp_path)
    assert recognized.returncode == 0, recognized.stderr[-3000:]
    lines = [json.loads(line) for line in recognized.stdout.splitlines()]
    assert len(lines) == 50
    for line in lines:
        expected = Path(line["image"]).parent.name
        # A few LFW photos show a second person at the edge; the photo's subject is the largest face.
        largest = max(line["faces"], key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
        assert largest["label"] == expected, line["image"]


@pytest.mark.slow
def test_failed_gate_publishes_nothing(tmp_path, demo_root):
    # Test photos filed under the wrong names: the model is right, so the gate must fail.
    train, test = tmp_path / "train", tmp_path / "test"
    people = ["Colin_Powell", "Serena_Williams"]
    for person, wrong in zip(people, reversed(people)):
        shutil.copytree(demo_root / "dataset" / person, train / person)
        shutil.copytree(demo_root / "test" / person, test / wrong)
    result = kubeface("run", "--json", "--dataset", str(train), "--test-dataset", str(test),
                      "--model-name", "gate-test", env_home=tmp_path)
    assert result.returncode == 3, result.stderr[-3000:]
    summary = last_json(result.stdout)
    assert summary["passed"] is False
    assert summary["published"] is False
    assert summary["accuracy"] == 0.0
    assert not (tmp_path / "store" / "models" / "gate-test").exists()


def test_one_person_fails_before_alignment(tmp_path, demo_root):
    shutil.copytree(demo_root / "dataset" / "Laura_Bush", tmp_path / "only" / "Laura_Bush")
    result = kubeface("run", "--dataset", str(tmp_path / "only"), env_home=tmp_path)
    assert result.returncode == 2
    assert "at least 2 people; found 1" in result.stderr
    assert "stage align" not in result.stderr
    # The task's message, not the exception's module path.
    assert "pipeline failed: training needs photos of at least 2 people" in result.stderr
