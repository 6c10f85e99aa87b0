"""A published model records its alignment and embedding settings, and the recognizer uses them."""

from __future__ import annotations

import json
import shutil

from kubeface.align import AlignSettings
from kubeface.catalog import resolve_model
from kubeface.embed import EmbedSettings
from kubeface.publish import MODEL_FILE
from kubeface.recognizer import Recognizer


def test_model_records_settings(trained_model):
    info = json.loads((resolve_model(trained_model) / MODEL_FILE).read_text())
    assert info["align"] == AlignSettings().to_json()
    assert info["embed"] == EmbedSettings().to_json()


def test_recognizer_uses_recorded_settings(trained_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model(trained_model), folder)
    info = json.loads((folder / MODEL_FILE).read_text())
    info["embed"] = {"standardization": "per_image", "add_mirrored": True}
    info["align"]["method"] = "similarity"
    (folder / MODEL_FILE).write_text(json.dumps(info))
    recognizer = Recognizer(folder)
    assert recognizer.embedder.settings == EmbedSettings(standardization="per_image", add_mirrored=True)
    assert recognizer.align.method == "similarity"


def test_recognizer_reads_model_without_settings(trained_model, tmp_path):
    # A model written before the settings existed was made with box crops and plain embeddings.
    folder = tmp_path / "model"
    shutil.copytree(resolve_model(trained_model), folder)
    info = json.loads((folder / MODEL_FILE).read_text())
    del info["embed"]
    del info["align"]["method"]
    (folder / MODEL_FILE).write_text(json.dumps(info))
    recognizer = Recognizer(folder)
    assert recognizer.embedder.settings == EmbedSettings(standardization="fixed", add_mirrored=False)
    assert recognizer.align == AlignSettings(margin=info["align"]["margin"], image_size=160, method="box")
