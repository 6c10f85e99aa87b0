"""The linear SVM: NumPy prediction equals scikit-learn's, storage has no pickle."""

import json
import zipfile

import numpy as np
import pytest

from kubeface.classifier import ARRAYS_FILE, META_FILE, LinearSVM, reference_svc, train_svm
from kubeface.errors import DatasetError, ModelError


def clustered(k: int, per_class: int, seed: int, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 24)) * 2.5
    points = np.concatenate([c + rng.normal(size=(per_class, 24)) * spread for c in centres])
    labels = [f"person {i}" for i in range(k) for _ in range(per_class)]
    return points, labels


@pytest.mark.parametrize("k", [2, 3, 10])
def test_predict_proba_matches_sklearn(k):
    points, labels = clustered(k, 12, seed=k)
    queries, _ = clustered(k, 4, seed=100 + k, spread=1.8)
    ours = train_svm(points, labels).predict_proba(queries)
    expected = reference_svc(points, labels).predict_proba(queries)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-9)


def test_predict_returns_names_in_class_order():
    points, labels = clustered(3, 10, seed=7)
    model = train_svm(points, labels)
    names, probabilities = model.predict(points[[0, 10, 20]])
    assert names == ["person 0", "person 1", "person 2"]
    assert np.all(probabilities > 0.5)


def test_save_load_round_trip_without_pickle(tmp_path):
    points, labels = clustered(4, 8, seed=3)
    model = train_svm(points, labels)
    model.save(tmp_path)
    with zipfile.ZipFile(tmp_path / ARRAYS_FILE) as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128]
            assert b"'descr': '|O'" not in header, f"{name} is an object array"
    loaded = LinearSVM.load(tmp_path)
    assert loaded.classes == model.classes
    np.testing.assert_array_equal(loaded.predict_proba(points), model.predict_proba(points))


def test_load_rejects_other_format(tmp_path):
    points, labels = clustered(2, 6, seed=1)
    train_svm(points, labels).save(tmp_path)
    meta = json.loads((tmp_path / META_FILE).read_text())
    meta["format"] = 99
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format 99"):
        LinearSVM.load(tmp_path)


def test_one_person_is_rejected():
    points, _ = clustered(1, 5, seed=2)
    with pytest.raises(DatasetError, match="at least 2 people; found 1"):
        train_svm(points, ["only"] * 5)
