"""Retraining with one more person through `kubeface run` and the KFP local runner."""

from __future__ import annotations

import json

import pytest
from growth import demo_with_new_person

from kubeface.cli import main

PERSON = "Vladimir_Putin"


def run_json(arguments: list[str], capsys) -> dict:
    code = main(["run", *arguments, "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, summary.get("reason")
    return summary


@pytest.mark.slow
def test_run_twice_embeds_only_new_person(demo_root, tmp_path, capsys):
    common = [
        "--store",
        str(tmp_path / "store"),
        "--model-name",
        "faces",
        "--pipeline-root",
        str(tmp_path / "runs"),
    ]
    first = run_json(common, capsys)
    assert first["model_uri"] == f"{tmp_path / 'store'}/models/faces/1.0.0"
    assert first["cache"] == {"enabled": True, "hits": 0, "misses": 220, "embedded": 220}
    assert first["rejection"]["false_accept_rate"] <= 0.1

    dataset, test = demo_with_new_person(demo_root, tmp_path / "faces-1.0.1")
    second = run_json(
        [
            *common,
            "--dataset",
            str(dataset),
            "--test-dataset",
            str(test),
            "--unknown-dataset",
            str(demo_root / "unknown"),
            "--not-worse",
        ],
        capsys,
    )
    assert second["model_uri"] == f"{tmp_path / 'store'}/models/faces/1.0.1"
    assert second["cache"] == {"enabled": True, "hits": 220, "misses": 20, "embedded": 20}
    assert PERSON in second["labels"]
    assert second["comparison"]["people_added"] == [PERSON]
    assert second["comparison"]["accuracy_before"] == pytest.approx(50 / 55)
    assert second["accuracy"] == 1.0
