"""The LFW benchmark command on a slice of LFW View 2: real photos, real models, the CLI's output."""

from __future__ import annotations

import json

import pytest

from kubeface import cli, lfw

SLICE_PER_CLASS = 60


@pytest.fixture(scope="module")
def lfw_slice(shared_data, tmp_path_factory):
    """The first 60 same-person and 60 different-person pairs of View 2's first fold, as one set."""
    pairs = lfw.read_pairs(shared_data / "lfw_meta" / "pairs.txt").pairs
    same = [p for p in pairs if p.fold == 0 and p.same][:SLICE_PER_CLASS]
    different = [p for p in pairs if p.fold == 0 and not p.same][:SLICE_PER_CLASS]
    lines = [str(SLICE_PER_CLASS)]
    for pair in same:
        person = pair.first.split("/")[0]
        lines.append(f"{person}\t{_number(pair.first)}\t{_number(pair.second)}")
    for pair in different:
        lines.append(f"{pair.first.split('/')[0]}\t{_number(pair.first)}\t"
                     f"{pair.second.split('/')[0]}\t{_number(pair.second)}")
    path = tmp_path_factory.mktemp("lfw") / "pairs-slice.txt"
    path.write_text("\n".join(lines) + "\n")
    photos = {p.first for p in same + different} | {p.second for p in same + different}
    return shared_data / "lfw_deepfunneled", path, len(photos)


def _number(name: str) -> int:
    return int(name.rsplit("_", 1)[1].split(".")[0])


def test_benchmark_lfw_slice_json(lfw_slice, tmp_path, capsys):
    lfw_dir, pairs, photos = lfw_slice
    output = tmp_path / "out"
    code = cli.main(["benchmark", "lfw", "--lfw-dir", str(lfw_dir), "--pairs", str(pairs),
                     "--output-dir", str(output), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["pairs"] == 2 * SLICE_PER_CLASS
    assert summary["photos"] == photos
    assert summary["protocol"] == "k-fold"
    # FaceNet 20180408-102900 scores about 99% on View 2; 120 pairs leave room for a few errors.
    assert summary["accuracy"] >= 0.95
    assert summary["accuracy_std"] < 0.1
    assert summary["auc"] >= 0.98
    assert summary["eer"] <= 0.06
    assert summary["val_at_far"] >= 0.5
    assert summary["no_face"] == len(summary["no_face_photos"])
    assert summary["dropped_pairs"] == 0
    report = json.loads((output / "report.json").read_text())
    assert len(report["folds"]) == 10
    assert sum(f["pairs"] for f in report["folds"]) == 2 * SLICE_PER_CLASS
    assert (output / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_benchmark_lfw_second_run_uses_cache(lfw_slice, tmp_path, capsys):
    lfw_dir, pairs, photos = lfw_slice
    arguments = ["benchmark", "lfw", "--lfw-dir", str(lfw_dir), "--pairs", str(pairs), "--json",
                 "--no-subtract-mean"]
    cli.main([*arguments, "--output-dir", str(tmp_path / "a"), "--distance", "euclidean"])
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cli.main([*arguments, "--output-dir", str(tmp_path / "b"), "--distance", "cosine"])
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (second["photos_detected"], second["crops_embedded"]) == (0, 0)
    # Cosine and Euclidean distances rank L2-normalised embeddings alike.
    assert second["accuracy"] == first["accuracy"]
    assert second["auc"] == pytest.approx(first["auc"])


def test_benchmark_lfw_bad_pairs_file(lfw_slice, tmp_path, capsys):
    lfw_dir, _, _ = lfw_slice
    bad = tmp_path / "bad.txt"
    bad.write_text("10 300\nnot a pair line\n")
    code = cli.main(["benchmark", "lfw", "--lfw-dir", str(lfw_dir), "--pairs", str(bad)])
    assert code == 2
    assert "announces 10 sets of 300" in capsys.readouterr().err
