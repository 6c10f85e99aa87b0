"""End to end on SeaweedFS: push the demo photos, train with `kubeface run`, publish, recognize.

The KFP local runner runs each task as a subprocess of `kubeface run`, so the credentials
reach the tasks as inherited environment variables, never as pipeline parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def kubeface(arguments: list[str], environment: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubeface.cli", *arguments], env=environment,
                          capture_output=True, text=True, timeout=timeout)


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_push_run_publish_on_s3(seaweedfs, demo_root, tmp_path):
    store = seaweedfs.store_uri("team")
    prefix = "team/"
    environment = {**os.environ, **seaweedfs.environment(), "KUBEFACE_HOME": str(tmp_path / "home"),
                   "KUBEFACE_STORE": str(tmp_path / "unused-local-store")}
    environment.setdefault("KUBEFACE_CACHE", os.environ.get("KUBEFACE_CACHE") or str(tmp_path / "cache"))
    transcript = []
    for folder, name in (("dataset", "faces"), ("test", "faces-test")):
        pushed = kubeface(["dataset", "push", str(demo_root / folder), "--name", name, "--version", "1.0.0",
                           "--store", store], environment)
        transcript.append(pushed.stdout + pushed.stderr)
        assert pushed.returncode == 0, pushed.stderr
        assert pushed.stdout.strip() == f"{store}/datasets/{name}/1.0.0"

    pipeline_root = tmp_path / "runs"
    run = kubeface(["run", "--dataset", f"{store}/datasets/faces/1.0.0",
                    "--test-dataset", f"{store}/datasets/faces-test/1.0.0", "--store", store,
                    "--s3-endpoint", seaweedfs.endpoint, "--pipeline-root", str(pipeline_root), "--json"],
                   environment, timeout=1800)
    transcript.append(run.stdout + run.stderr)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["passed"] is True
    assert summary["published"] is True
    assert summary["model_uri"] == f"{store}/models/facenet-classifier/1.0.0"
    people = sorted(p.name for p in (demo_root / "dataset").iterdir() if p.is_dir())
    assert summary["labels"] == people
    assert summary["n_test"] == 50
    assert summary["accuracy"] >= 0.96
    assert summary["dataset"]["name"] == "faces"
    assert summary["dataset"]["version"] == "1.0.0"

    # The manifest's checksums match the objects the server holds.
    model_prefix = f"{prefix}models/facenet-classifier/1.0.0/"
    objects = seaweedfs.objects(model_prefix)
    manifest = json.loads(objects.pop(f"{model_prefix}manifest.json"))
    assert sorted(entry["path"] for entry in manifest["files"]) == sorted(key[len(model_prefix):] for key in objects)
    for entry in manifest["files"]:
        data = objects[model_prefix + entry["path"]]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size"]
    assert manifest["metadata"]["dataset"]["uri"] == f"{store}/datasets/faces/1.0.0"

    # The dataset the pipeline downloaded is byte-identical to the pushed photos.
    plans = list(pipeline_root.rglob("plan.json"))
    assert len(plans) == 1
    fetched = plans[0].parent
    assert files_under(fetched / "train") == files_under(demo_root / "dataset")
    assert files_under(fetched / "test") == files_under(demo_root / "test")

    shown = kubeface(["model", "show", summary["model_uri"], "--json"], environment)
    transcript.append(shown.stdout + shown.stderr)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["metrics"]["accuracy"] == summary["accuracy"]

    photo = sorted((demo_root / "test" / "Colin_Powell").glob("*.jpg"))[0]
    recognized = kubeface(["recognize", "--model", summary["model_uri"], "--json", str(photo)], environment)
    transcript.append(recognized.stdout + recognized.stderr)
    assert recognized.returncode == 0, recognized.stderr
    faces = json.loads(recognized.stdout.strip().splitlines()[-1])["faces"]
    assert [face["label"] for face in faces] == ["Colin_Powell"]

    # No secret in any output, run log, run artifact, stored object or the compiled pipeline.
    compiled = tmp_path / "pipeline.yaml"
    compiled_run = kubeface(["compile", "--output", str(compiled)], environment)
    assert compiled_run.returncode == 0, compiled_run.stderr
    secret = seaweedfs.secret_key
    assert secret not in "\n".join(transcript)
    assert secret not in compiled.read_text()
    for path in pipeline_root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    for key, data in seaweedfs.objects(prefix).items():
        assert secret.encode() not in data, key
