"""LFW pairs files, fold assignment and pair distances, on small files written by the tests."""

from __future__ import annotations

import numpy as np
import pytest

from kubeface import lfw
from kubeface.errors import InvalidInputError


def _write(tmp_path, text: str, name: str = "pairs.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


TWO_SETS = """2\t1
Ann_Doe\t1\t2
Ann_Doe\t3\tBob_Roe\t12
Cy_Poe\t2\t10
Bob_Roe\t1\tCy_Poe\t1
"""


def test_read_pairs_two_sets(tmp_path):
    pairs = lfw.read_pairs(_write(tmp_path, TWO_SETS))
    assert pairs.sets == 2
    assert pairs.pairs == [
        lfw.Pair("Ann_Doe/Ann_Doe_0001.jpg", "Ann_Doe/Ann_Doe_0002.jpg", True, 0),
        lfw.Pair("Ann_Doe/Ann_Doe_0003.jpg", "Bob_Roe/Bob_Roe_0012.jpg", False, 0),
        lfw.Pair("Cy_Poe/Cy_Poe_0002.jpg", "Cy_Poe/Cy_Poe_0010.jpg", True, 1),
        lfw.Pair("Bob_Roe/Bob_Roe_0001.jpg", "Cy_Poe/Cy_Poe_0001.jpg", False, 1),
    ]


def test_read_pairs_single_set(tmp_path):
    text = "2\nAnn_Doe 1 2\nBob_Roe 1 3\nAnn_Doe 1 Bob_Roe 1\nAnn_Doe 2 Cy_Poe 1\n"
    pairs = lfw.read_pairs(_write(tmp_path, text))
    assert pairs.sets == 1
    assert [p.same for p in pairs.pairs] == [True, True, False, False]
    assert {p.fold for p in pairs.pairs} == {0}


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("ten 300\n", "line 1: expected the pair counts"),
    ("1 1\nAnn_Doe 1 2\n", "announces 1 sets of 1 same and 1 different pairs \\(2 lines\\), but 1"),
    ("1 1\nAnn_Doe 1 Bob_Roe 2\nAnn_Doe 1 Bob_Roe 3\n", "line 2: expected NAME N1 N2"),
    ("1 1\nAnn_Doe 1 2\nAnn_Doe 1 2\n", "line 3: expected NAME1 N1 NAME2 N2"),
    ("1 1\nAnn_Doe 0 2\nAnn_Doe 1 Bob_Roe 2\n", "line 2: photo number must be a positive integer; got '0'"),
])
def test_read_pairs_rejects(tmp_path, text, message):
    with pytest.raises(InvalidInputError, match=message):
        lfw.read_pairs(_write(tmp_path, text))


def test_read_pairs_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot read pairs file"):
        lfw.read_pairs(tmp_path / "absent.txt")


def test_assign_folds_balances_classes():
    pairs = [lfw.Pair(f"a{i}", f"b{i}", i < 20, 0) for i in range(40)]
    folded = lfw.assign_folds(pairs, 10)
    for fold in range(10):
        in_fold = [p for p in folded if p.fold == fold]
        assert sum(p.same for p in in_fold) == 2
        assert sum(not p.same for p in in_fold) == 2
    # Consecutive pairs of the file stay together: the first two same pairs form fold 0.
    assert [p.fold for p in folded[:4]] == [0, 0, 1, 1]


def test_assign_folds_too_few_pairs():
    pairs = [lfw.Pair("a", "b", True, 0), lfw.Pair("a", "c", False, 0)]
    with pytest.raises(InvalidInputError, match="cannot cut 1 same-person pairs into 10 folds"):
        lfw.assign_folds(pairs, 10)


def test_pair_distances_known_values():
    first = np.array([[1.0, 0.0], [0.0, 2.0]])
    second = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert lfw.pair_distances(first, second, "euclidean") == pytest.approx([np.sqrt(2), 1.0])
    assert lfw.pair_distances(first, second, "cosine") == pytest.approx([1.0, 0.0])


def test_drop_missing_names_absent_photos(tmp_path):
    (tmp_path / "Ann_Doe").mkdir()
    for number in (1, 2):
        (tmp_path / "Ann_Doe" / f"Ann_Doe_000{number}.jpg").write_bytes(b"x")
    pairs = lfw.read_pairs(_write(tmp_path, "1\nAnn_Doe 1 2\nAnn_Doe 1 Bob_Roe 1\n")).pairs
    kept, absent = lfw.drop_missing(pairs, tmp_path)
    assert kept == pairs[:1]
    assert absent == ["Bob_Roe/Bob_Roe_0001.jpg"]


def test_plan_pairs_rejects_wrong_folder(tmp_path):
    pairs = _write(tmp_path, "1\nAnn_Doe 1 2\nAnn_Doe 1 Bob_Roe 1\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="none of the photos of .* were found"):
        lfw.plan_pairs(tmp_path / "empty", pairs, None, 10)


def test_subtract_mean_uses_training_folds_only():
    # Two folds of one same and one different pair, in 2-D. With fold 0 held out, the mean is
    # the one of fold 1's four embeddings, and cosine distances are measured from it.
    embeddings = np.array([[1.0, 0.1], [1.0, 0.2], [1.0, 0.3], [0.9, 1.0],   # fold 0
                           [3.0, 0.0], [3.0, 0.5], [3.0, 1.0], [1.0, 3.0]])  # fold 1
    names = [f"p{i}" for i in range(8)]
    pairs = [lfw.Pair("p0", "p1", True, 0), lfw.Pair("p2", "p3", False, 0),
             lfw.Pair("p4", "p5", True, 1), lfw.Pair("p6", "p7", False, 1)]
    settings = lfw.BenchmarkSettings(distance="cosine", subtract_mean=True)
    result = lfw.evaluate_kfold(pairs, {n: i for i, n in enumerate(names)}, embeddings, settings)

    def cosine(a, b):
        return 1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    for held_out, train_rows in ((0, [4, 5, 6, 7]), (1, [0, 1, 2, 3])):
        mean = embeddings[train_rows].mean(axis=0)
        centred = embeddings - mean
        a, b, c, d = (centred[i] for i in train_rows)
        same_distance, different_distance = cosine(a, b), cosine(c, d)
        assert same_distance < different_distance
        assert result.folds[held_out].max_distance == pytest.approx((same_distance + different_distance) / 2)
