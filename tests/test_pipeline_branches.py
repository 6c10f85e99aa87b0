"""The passed and failed branches with deploy=true, run through the KFP local runner.

The local runner has no Kubernetes, and the local store gives no S3 model URI, so a deploy step
that runs fails on its first check. That failure shows the step ran, after publish; a failed
gate must not reach it at all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubeface.catalog import MANIFEST
from kubeface.errors import KubefaceError
from kubeface.localrun import run_pipeline

pytestmark = pytest.mark.slow


def arguments(dataset: Path, test_dataset: Path, store: Path, min_accuracy: float) -> dict:
    return {
        "dataset_uri": str(dataset), "test_dataset_uri": str(test_dataset), "store_uri": str(store),
        "model_name": "branches", "min_accuracy": min_accuracy, "deploy": True, "isvc_name": "faces",
    }


def published_versions(store: Path) -> list[str]:
    folder = store / "models" / "branches"
    return sorted(p.name for p in folder.iterdir() if (p / MANIFEST).is_file()) if folder.is_dir() else []


def test_passed_branch_publishes_then_deploys(demo_root, tmp_path):
    store = tmp_path / "store"
    with pytest.raises(KubefaceError) as raised:
        run_pipeline(arguments(demo_root / "dataset", demo_root / "test", store, 0.9), tmp_path / "runs")
    message = str(raised.value)
    assert "cannot serve model" in message
    assert "publish to an S3 store" in message
    assert published_versions(store) == ["1.0.0"]


def test_failed_gate_neither_publishes_nor_deploys(demo_root, tmp_path):
    # Move one held-out photo into another person's folder: one wrong prediction out of 50.
    test_dataset = tmp_path / "test"
    shutil.copytree(demo_root / "test", test_dataset)
    people = sorted(p for p in test_dataset.iterdir() if p.is_dir())
    moved = min(people[0].glob("*.jpg"))
    shutil.move(moved, people[1] / f"moved-{moved.name}")
    store = tmp_path / "store"
    summary = run_pipeline(arguments(demo_root / "dataset", test_dataset, store, 1.0), tmp_path / "runs")
    assert summary["passed"] is False
    assert summary["published"] is False
    assert summary["accuracy"] == pytest.approx(49 / 50)
    assert published_versions(store) == []
    (run_folder,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert (run_folder / "report-rejected").is_dir()
    assert not (run_folder / "deploy").exists()
    assert not (run_folder / "publish").exists()
