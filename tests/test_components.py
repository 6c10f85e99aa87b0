"""Each KFP component's Python function, called directly on the bundled demo photos."""

import json
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl

from kubeface import components
from kubeface.catalog import MANIFEST, verify_folder

DEMO_PEOPLE = [
    "Ariel_Sharon", "Colin_Powell", "Donald_Rumsfeld", "Gerhard_Schroeder", "Gloria_Macapagal_Arroyo",
    "Hugo_Chavez", "Junichiro_Koizumi", "Laura_Bush", "Serena_Williams", "Tony_Blair",
]


def artifact(kind, path: Path):
    path.mkdir(parents=True, exist_ok=True)
    return kind(name=path.name, uri=str(path), metadata={})


@pytest.fixture(scope="module")
def chain(tmp_path_factory, demo_root, ir_dir):
    """Run convert, fetch, align, embed, train and validate once; tests read the outputs."""
    work = tmp_path_factory.mktemp("components")
    out = {}
    out["ir"] = artifact(dsl.Model, work / "ir")
    components.convert.python_func(ir=out["ir"], precision="FP32")
    out["dataset"] = artifact(dsl.Dataset, work / "dataset")
    out["shards"] = components.fetch.python_func(
        dataset=out["dataset"], dataset_uri=str(demo_root / "dataset"),
        test_dataset_uri=str(demo_root / "test"), shards=1)
    out["aligned"] = artifact(dsl.Dataset, work / "aligned")
    components.align.python_func(dataset=out["dataset"], ir=out["ir"], aligned=out["aligned"])
    out["embeddings"] = artifact(dsl.Dataset, work / "embeddings")
    components.embed.python_func(aligned=out["aligned"], ir=out["ir"], embeddings=out["embeddings"])
    out["model"] = artifact(dsl.Model, work / "model")
    components.train.python_func(shards=[out["embeddings"]], model=out["model"])
    out["metrics"] = artifact(dsl.Metrics, work / "metrics")
    out["confusion"] = artifact(dsl.ClassificationMetrics, work / "confusion")
    out["plot"] = dsl.HTML(name="plot", uri=str(work / "plot.html"), metadata={})
    out["report"] = artifact(dsl.Artifact, work / "report")
    out["roc"] = artifact(dsl.ClassificationMetrics, work / "roc")
    out["passed"] = components.validate.python_func(
        model=out["model"], metrics=out["metrics"], confusion=out["confusion"], plot=out["plot"],
        report=out["report"], roc=out["roc"], min_accuracy=0.9)
    out["store"] = work / "store"
    return out


def test_convert_writes_four_irs(chain):
    info = json.loads((Path(chain["ir"].path) / "ir.json").read_text())
    assert sorted(info["files"]) == ["facenet", "onet", "pnet", "rnet"]
    assert info["precision"] == "FP32"
    assert chain["ir"].metadata["precision"] == "FP32"


def test_fetch_counts_people_and_plans_shards(chain):
    assert chain["shards"] == [0]
    assert chain["dataset"].metadata["people"] == 10
    assert chain["dataset"].metadata["photos"] == 200


def test_align_crops_every_demo_photo(chain):
    folder = Path(chain["aligned"].path)
    index = json.loads((folder / "index.json").read_text())
    statuses = [row["status"] for row in index["rows"]]
    assert statuses.count("aligned") == 200
    with np.load(folder / "crops.npz", allow_pickle=False) as data:
        assert data["crops"].shape == (200, 160, 160, 3)
        assert data["crops"].dtype == np.uint8


def test_embed_vectors_are_unit_length(chain):
    with np.load(Path(chain["embeddings"].path) / "embeddings.npz", allow_pickle=False) as data:
        vectors = data["embeddings"]
    assert vectors.shape == (200, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_train_holds_out_the_test_folder(chain):
    assert chain["model"].metadata == {"people": 10, "n_train": 150, "n_test": 50}
    classes = json.loads((Path(chain["model"].path) / "classifier" / "classifier.json").read_text())["classes"]
    assert classes == DEMO_PEOPLE


def test_validate_passes_with_full_confusion_matrix(chain):
    assert chain["passed"] is True
    report = json.loads((Path(chain["report"].path) / "report.json").read_text())
    assert report["accuracy"] >= 0.96
    matrix = np.asarray(report["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() == 50
    assert matrix.sum(axis=1).tolist() == [5] * 10
    assert chain["metrics"].metadata["accuracy"] == report["accuracy"]
    assert chain["confusion"].metadata["confusionMatrix"]["annotationSpecs"][0]["displayName"] == "Ariel_Sharon"
    assert (Path(chain["report"].path) / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_publish_seals_version_with_manifest(chain):
    summary = json.loads(components.publish.python_func(
        ir=chain["ir"], model=chain["model"], report=chain["report"], store_uri=str(chain["store"]),
        model_name="components-test"))
    assert summary["published"] is True
    assert summary["model_uri"] == str(chain["store"] / "models" / "components-test" / "1.0.0")
    folder = Path(summary["model_uri"])
    manifest = json.loads((folder / MANIFEST).read_text())
    paths = {entry["path"] for entry in manifest["files"]}
    assert {"ir/facenet.xml", "ir/facenet.bin", "classifier/classifier.npz", "model.json",
            "validation/confusion_matrix.png"} <= paths
    verify_folder(folder, manifest)
    second = json.loads(components.publish.python_func(
        ir=chain["ir"], model=chain["model"], report=chain["report"], store_uri=str(chain["store"]),
        model_name="components-test"))
    assert second["model_uri"].endswith("/components-test/1.0.1")


def test_report_rejected_publishes_nothing(chain, tmp_path):
    summary = json.loads(components.report_rejected.python_func(model=chain["model"], report=chain["report"]))
    assert summary["published"] is False
    assert summary["model_uri"] is None
    assert summary["labels"] == DEMO_PEOPLE
