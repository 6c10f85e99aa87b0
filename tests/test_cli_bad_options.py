"""Bad options and damaged files give one line on stderr naming the value, before any work is done."""

from __future__ import annotations

import json
import shutil

import pytest

from kubeface.catalog import resolve_model, split_model_uri
from kubeface.cli import main


def run(capsys, *arguments) -> tuple[int, str, str]:
    try:
        code = main(list(arguments))
    except SystemExit as exit:  # argparse rejects a value by exiting
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("arguments", "message"), [
    (["--log-level", "bogus", "model", "list"], "argument --log-level: invalid choice: 'BOGUS'"),
    (["serve", "--model", "x", "--http-port", "70000"], "invalid port '70000': expected a number from 1 to 65535"),
    (["serve", "--model", "x", "--grpc-port", "0"], "invalid port '0'"),
    (["predict", "photo.jpg", "--url", "http://127.0.0.1:9", "--timeout", "-1"], "invalid timeout '-1'"),
    (["predict", "photo.jpg", "--url", "http://127.0.0.1:9", "--timeout", "inf"], "invalid timeout 'inf'"),
])
def test_argument_rejected_with_usage(capsys, arguments, message):
    code, _, err = run(capsys, *arguments)
    assert code == 2
    assert message in err


def test_predict_url_without_scheme(capsys, demo_root):
    photo = str(next((demo_root / "test" / "Tony_Blair").glob("*.jpg")))
    code, _, err = run(capsys, "predict", photo, "--url", "notaurl")
    assert code == 2
    assert "invalid --url 'notaurl': expected http://HOST:PORT" in err


def test_predict_annotate_into_missing_folder(capsys, demo_root, tmp_path):
    photo = str(next((demo_root / "test" / "Tony_Blair").glob("*.jpg")))
    target = tmp_path / "missing" / "out.png"
    # The check comes before any request, so no server needs to run on this port.
    code, _, err = run(capsys, "predict", photo, "--url", "http://127.0.0.1:9", "--annotate", str(target))
    assert code == 2
    assert f"folder {target.parent} does not exist" in err


@pytest.mark.parametrize("name", ["missing/out.yaml", "out.json"])
def test_compile_output_checked(capsys, tmp_path, name):
    code, _, err = run(capsys, "compile", "--output", str(tmp_path / name))
    assert code == 2
    assert "expected a .yaml file in an existing folder" in err


def test_run_target_far_checked_first(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--dataset", str(tmp_path / "nowhere"), "--target-far", "1")
    assert code == 2
    assert "target_far must be in [0, 1)" in err


def test_run_model_name_checked_first(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--dataset", str(tmp_path / "nowhere"), "--model-name", "Bad Name")
    assert code == 2
    assert "invalid model name 'Bad Name'" in err


def test_benchmark_output_dir_that_is_a_file(capsys, tmp_path):
    output = tmp_path / "a-file"
    output.write_text("x")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nA 1 2\nA 1 B 1\n")
    code, _, err = run(capsys, "benchmark", "lfw", "--lfw-dir", str(tmp_path), "--pairs", str(pairs),
                       "--output-dir", str(output))
    assert code == 2
    assert f"cannot use {output} as the output folder" in err


def test_damaged_manifest_named_and_others_listed(capsys, trained_model, tmp_path):
    store_root, name, version = split_model_uri(trained_model)
    store = tmp_path / "store"
    shutil.copytree(store_root, store)
    good = store / "models" / name / version
    damaged = store / "models" / "other" / "1.0.0"
    shutil.copytree(good, damaged)
    (damaged / "manifest.json").write_text("{not json")

    code, out, err = run(capsys, "model", "list", "--store", str(store), "--json")
    assert code == 1
    assert [(row["name"], row["version"]) for row in json.loads(out)] == [(name, version)]
    assert f"{damaged / 'manifest.json'} is not valid JSON" in err

    code, _, err = run(capsys, "recognize", "--model", str(damaged), str(resolve_model(trained_model) / "model.json"))
    assert code == 2
    assert f"{damaged / 'manifest.json'} is not valid JSON" in err


@pytest.mark.parametrize("arguments", [
    ["recognize", "--model", "x", "photo.jpg", "--min-face-size", "0"],
    ["predict", "photo.jpg", "--url", "http://127.0.0.1:9", "--min-face-size", "0"],
    ["benchmark", "lfw", "--lfw-dir", "d", "--pairs", "p", "--batch-size", "0"],
])
def test_zero_sizes_rejected(capsys, arguments):
    code, _, err = run(capsys, *arguments)
    assert code == 2
    assert "expected an integer >= 1; got 0" in err
