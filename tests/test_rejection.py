"""Unknown-face rejection: threshold choice, honest measurement, and the figures on the demo photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from growth import train_version

from kubeface import rejection
from kubeface.errors import InvalidInputError, ModelError
from kubeface.imageio import read_image
from kubeface.recognizer import Recognizer
from kubeface.rejection import Scores, Thresholds, choose_thresholds, cross_validated_far


def scores(distance, probability, correct=None, group=None) -> Scores:
    n = len(distance)
    return Scores(
        np.asarray(distance, float),
        np.asarray(probability, float),
        np.asarray(correct if correct is not None else [False] * n, bool),
        list(group or [f"p{i}" for i in range(n)]),
    )


def test_thresholds_halfway_between_classes():
    genuine = scores([0.2, 0.4], [0.9, 0.8], [True, True])
    impostor = scores([1.0, 1.2], [0.3, 0.1])
    chosen = choose_thresholds(genuine, impostor, 0.0)
    # Strictest pair that keeps both genuine faces: halfway to the next observed value.
    assert chosen.max_distance == pytest.approx(0.7)
    assert chosen.min_probability == pytest.approx(0.55)


def test_thresholds_use_false_accept_budget():
    # 100 impostors at distance 1.0 .. 1.99 and one genuine face at 1.005 that only a 1% budget reaches.
    impostor = scores(np.linspace(1.0, 1.99, 100), np.full(100, 0.5))
    genuine = scores([0.5, 1.005], [0.5, 0.5], [True, True])
    strict = choose_thresholds(genuine, impostor, 0.0)
    loose = choose_thresholds(genuine, impostor, 0.01)
    assert strict.accepts(np.array([1.005]), np.array([0.5])).tolist() == [False]
    assert loose.accepts(np.array([1.005]), np.array([0.5])).tolist() == [True]
    assert int(loose.accepts(impostor.distance, impostor.probability).sum()) == 1


def test_probability_rejects_what_distance_cannot():
    # Impostors as close as genuine faces but with low SVM probability.
    genuine = scores([0.5, 0.6, 0.7], [0.8, 0.7, 0.9], [True] * 3)
    impostor = scores([0.55, 0.65], [0.2, 0.3])
    chosen = choose_thresholds(genuine, impostor, 0.0)
    assert chosen.min_probability == pytest.approx(0.5)
    assert rejection.rates(chosen, genuine)["true_accept_rate"] == 1.0
    assert rejection.rates(chosen, impostor)["accepted"] == 0


def test_misnamed_genuine_faces_not_counted():
    genuine = scores([0.3, 0.9], [0.9, 0.9], [True, False])
    impostor = scores([1.0], [0.2])
    chosen = choose_thresholds(genuine, impostor, 0.0)
    assert chosen.max_distance == pytest.approx(0.6)
    assert rejection.rates(chosen, genuine) == {
        "n": 2,
        "accepted": 1,
        "accepted_correct": 1,
        "accept_rate": 0.5,
        "true_accept_rate": 0.5,
    }


def test_thresholds_need_both_kinds_of_faces():
    with pytest.raises(InvalidInputError, match="0 impostor faces"):
        choose_thresholds(scores([0.1], [0.9], [True]), Scores.empty(), 0.01)


def test_target_far_range_checked():
    with pytest.raises(InvalidInputError, match="target_far must be in"):
        rejection.check_target_far(1.5)


def test_measured_faces_never_choose_their_thresholds():
    # Fold 1 contains one impostor that looks genuine. Thresholds chosen with it would reject it.
    # Measured by cross-validation it is accepted, and the false-accept rate reports it.
    genuine = scores([0.2, 0.3, 0.4, 0.8], [0.9] * 4, [True] * 4)
    impostor = scores([1.2, 1.3, 0.5, 1.4], [0.9] * 4, group=["a", "b", "c", "d"])
    folds = np.array([0, 0, 1, 1])
    all_faces = choose_thresholds(genuine, impostor, 0.0)
    assert not all_faces.accepts(np.array([0.5]), np.array([0.9]))[0]
    measured = cross_validated_far(genuine, np.full(4, -1), impostor, folds, np.ones(4, bool), 0.0)
    assert measured["accepted"] == 1
    assert measured["false_accept_rate"] == pytest.approx(0.25)
    assert [fold["people"] for fold in measured["folds"]] == [["a", "b"], ["c", "d"]]


def test_leave_people_out_scores_every_photo():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 512))
    labels = [f"person{k}" for k in range(4) for _ in range(5)] + ["single"]
    points = np.concatenate(
        [centres[k] + 0.3 * rng.normal(size=(5, 512)) for k in range(4)] + [rng.normal(size=(1, 512))]
    )
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    genuine, impostor, folds = rejection.leave_people_out(points.astype(np.float32), labels, seed=3)
    assert sorted(p for fold in folds for p in fold) == sorted(set(labels))
    assert len(impostor) == len(labels)  # every photo is scored once as a stranger
    assert len(genuine) == 20  # every photo of a person with 2 or more, once
    assert genuine.correct.all()


def test_recognizer_checks_threshold_range(trained_model, tmp_path):
    import shutil

    from kubeface.catalog import resolve_model

    folder = tmp_path / "model"
    shutil.copytree(resolve_model(trained_model), folder)
    info = json.loads((folder / "model.json").read_text())
    info["rejection"]["max_distance"] = 3.5
    (folder / "model.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match=r"rejection max_distance must be a number in \[0.0, 2.0\]; got 3.5"):
        Recognizer(folder)


def test_demo_unknown_people_rejected(recognizer, demo_root):
    """A model trained on the 10 demo people, thresholds from people left out of its training set.

    The 20 photos of unknown people took no part in training or in choosing the thresholds.
    """
    photos = sorted((demo_root / "unknown").glob("*.jpg"))
    assert len(photos) == 20
    rejected = 0
    for photo in photos:
        faces = recognizer.recognize(read_image(photo)).faces
        assert len(faces) >= 1, photo.name
        face = max(faces, key=lambda f: f.width * f.height)
        assert face.nearest in recognizer.classifier.classes
        assert 0.0 < face.distance < 2.0
        rejected += face.label is None
    assert rejected >= 18, f"only {rejected} of 20 unknown people rejected"


def test_demo_known_people_accepted(recognizer, demo_root):
    photos = sorted((demo_root / "test").glob("*/*.jpg"))
    assert len(photos) == 50
    accepted = 0
    for photo in photos:
        faces = recognizer.recognize(read_image(photo)).faces
        face = max(faces, key=lambda f: f.width * f.height)
        accepted += face.label == photo.parent.name
    assert accepted >= 48, f"only {accepted} of 50 known test photos named"


def test_demo_thresholds_in_model(recognizer):
    rule = recognizer.info["rejection"]
    assert rule["target_far"] == 0.01
    assert rule["calibration"]["unknown_faces"] == 0
    assert rule["calibration"]["left_out_faces"] == 150
    assert recognizer.max_distance == rule["max_distance"]
    assert recognizer.min_probability == rule["min_probability"]
    assert 0.5 < recognizer.max_distance < 1.3
    assert rule["true_accept_rate"] >= 0.95
    assert rule["false_accept_rate"] <= 0.05


@pytest.fixture(scope="module")
def with_unknown_folder(ir_dir, demo_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("unknown-folder")
    result = train_version(
        ir_dir,
        demo_root / "dataset",
        demo_root / "test",
        work,
        str(work / "store"),
        "faces",
        unknown_dataset=demo_root / "unknown",
    )
    return result, json.loads((work / "validate" / "report.json").read_text())


def test_unknown_folder_measured_by_cross_validation(with_unknown_folder):
    result, report = with_unknown_folder
    rule = report["rejection"]
    assert result["n_unknown"] == 20
    assert rule["calibration"]["unknown_faces"] == 20
    assert rule["n_impostor_measured"] == 20
    assert rule["false_accept_method"].startswith("5-fold cross-validation over the unknown people")
    folds = report["rejection_details"]["false_accept_folds"]
    people = [p for fold in folds for p in fold["people"]]
    assert len(people) == 20  # each unknown person measured exactly once
    assert len(set(people)) == 20
    assert sum(fold["accepted"] for fold in folds) == round(rule["false_accept_rate"] * 20)
    assert rule["false_accept_rate"] <= 0.1
    assert rule["true_accept_rate"] >= 0.95


def test_roc_curve_written(with_unknown_folder, tmp_path):
    _, report = with_unknown_folder
    curve = report["rejection_details"]["roc"]["distance"]
    assert report["rejection_details"]["roc_impostors"] == "unknown people"
    assert curve["fpr"][0] == 0.0
    assert curve["tpr"][0] == 0.0
    assert curve["fpr"][-1] == 1.0
    assert curve["tpr"][-1] == 1.0
    assert curve["fpr"] == sorted(curve["fpr"])
    assert curve["tpr"] == sorted(curve["tpr"])
    assert len(curve["fpr"]) == len(curve["tpr"]) == len(curve["thresholds"])


def test_thresholds_object_round_trip():
    assert Thresholds(0.9, 0.4).to_json() == {"max_distance": 0.9, "min_probability": 0.4}


def test_recognize_command_reports_nearest_of_unknown(trained_model, demo_root, capsys):
    from kubeface.cli import main

    photo = demo_root / "unknown" / "Holly_Hunter_0001.jpg"
    assert main(["recognize", "--model", trained_model, str(photo), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    face = max(result["faces"], key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
    assert face["label"] is None
    assert face["nearest"] in Recognizer.from_uri(trained_model).classifier.classes
    assert face["distance"] > Recognizer.from_uri(trained_model).max_distance or face["probability"] < 0.5
    assert main(["recognize", "--model", trained_model, str(photo)]) == 0
    assert f"unknown (nearest {face['nearest']}, distance {face['distance']:.3f}" in capsys.readouterr().out
