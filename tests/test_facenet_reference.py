"""FaceNet on OpenVINO against the same frozen graph run with TensorFlow, on real face crops.

Also covers what the comparison depends on: the IR's dynamic batch, the conversion cache, FP16
conversion and the f32 precision hint.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kubeface import convert, runtime, weights
from kubeface.align import AlignSettings, choose_face, crop_face
from kubeface.embed import Embedder
from kubeface.imageio import read_image

# Minimum cosine similarity between OpenVINO and TensorFlow embeddings at f32. The measured
# minimum over the 50 bundled test crops is 0.99999994 (OpenVINO 2026.4.1, TensorFlow 2.21.0).
MIN_COSINE_TENSORFLOW = 0.9999
# Minimum cosine similarity between FP16 and FP32 weights, both compiled at f32 precision.
# The measured minimum is 0.999998.
MIN_COSINE_FP16 = 0.9995

# Euclidean distances between the TensorFlow embeddings of six bundled test photos, two per
# person, in this order. Same person: 0.61 to 0.79; different people: 1.08 to 1.43.
GOLDEN_PHOTOS = (
    "Ariel_Sharon/Ariel_Sharon_0013.jpg",
    "Ariel_Sharon/Ariel_Sharon_0029.jpg",
    "Colin_Powell/Colin_Powell_0038.jpg",
    "Colin_Powell/Colin_Powell_0088.jpg",
    "Donald_Rumsfeld/Donald_Rumsfeld_0020.jpg",
    "Donald_Rumsfeld/Donald_Rumsfeld_0045.jpg",
)
GOLDEN_DISTANCES = np.array([
    [0.0000, 0.6110, 1.3428, 1.2837, 1.1293, 1.2264],
    [0.6110, 0.0000, 1.3598, 1.3010, 1.0805, 1.1262],
    [1.3428, 1.3598, 0.0000, 0.7855, 1.2869, 1.4348],
    [1.2837, 1.3010, 0.7855, 0.0000, 1.2345, 1.3245],
    [1.1293, 1.0805, 1.2869, 1.2345, 0.0000, 0.7323],
    [1.2264, 1.1262, 1.4348, 1.3245, 0.7323, 0.0000],
])
GOLDEN_TOLERANCE = 1e-3


def _crop(detector, path, settings: AlignSettings | None = None) -> np.ndarray:
    image = read_image(path)
    face = choose_face(detector.detect(image), image.shape)
    assert face is not None, f"no face found in {path}"
    return crop_face(image, face, settings or AlignSettings())


@pytest.fixture(scope="module")
def bundled_crops(demo_root, detector) -> tuple[list[str], np.ndarray]:
    """Relative paths and 160 x 160 crops of the 50 bundled test photos (10 people x 5)."""
    paths = sorted((demo_root / "test").glob("*/*.jpg"))
    names = [f"{path.parent.name}/{path.name}" for path in paths]
    return names, np.stack([_crop(detector, path) for path in paths])


@pytest.fixture(scope="module")
def tensorflow_facenet():
    """Embed one uint8 crop with the frozen graph in TensorFlow, at batch 1 as the graph fixes it."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(weights.verified_path(weights.FACENET).read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    has_phase_train = any(op.name == "phase_train" for op in graph.get_operations())
    session = tf.compat.v1.Session(graph=graph)

    def embed(crop: np.ndarray) -> np.ndarray:
        # The fixed standardisation of model 20180408-102900, written out here on purpose.
        feed = {"input:0": ((crop.astype(np.float32) - 127.5) / 128.0)[np.newaxis]}
        if has_phase_train:
            feed["phase_train:0"] = False
        return session.run("embeddings:0", feed)[0]

    yield embed
    session.close()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_openvino_matches_tensorflow(embedder, tensorflow_facenet, bundled_crops):
    names, crops = bundled_crops
    openvino = embedder.embed(crops)
    reference = np.stack([tensorflow_facenet(crop) for crop in crops])

    cosines = _cosines(openvino, reference)
    worst = int(np.argmin(cosines))
    assert cosines[worst] >= MIN_COSINE_TENSORFLOW, f"{names[worst]}: cosine {cosines[worst]}"
    assert np.allclose(np.linalg.norm(openvino, axis=1), 1.0, atol=1e-5)


def test_dynamic_batch_same_embeddings(ir_dir, bundled_crops):
    _, crops = bundled_crops
    single = Embedder(ir_dir, batch_size=1).embed(crops)
    for batch_size in (8, 32):
        batched = Embedder(ir_dir, batch_size=batch_size).embed(crops)
        assert np.abs(batched - single).max() <= 1e-6, f"batch {batch_size}"


def test_golden_distance_matrix(embedder, detector, demo_root):
    # The golden values were measured on box crops with a 32 px margin, so the crop settings are
    # fixed here and a change of the default alignment does not move them.
    box = AlignSettings(margin=32, method="box")
    crops = np.stack([_crop(detector, demo_root / "test" / name, box) for name in GOLDEN_PHOTOS])
    embeddings = embedder.embed(crops)
    distances = np.linalg.norm(embeddings[:, None] - embeddings[None, :], axis=2)

    difference = np.abs(distances - GOLDEN_DISTANCES).max()
    assert difference <= GOLDEN_TOLERANCE, f"distances differ from the golden matrix by {difference}"
    people = [name.split("/")[0] for name in GOLDEN_PHOTOS]
    for row, person in enumerate(people):
        same = [distances[row, col] for col, other in enumerate(people) if other == person and col != row]
        different = [distances[row, col] for col, other in enumerate(people) if other != person]
        assert max(same) < min(different), f"{GOLDEN_PHOTOS[row]} is nearer to another person"


def test_convert_second_run_converts_nothing(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="kubeface.convert")
    first = convert.ensure_converted("FP32", tmp_path)
    assert any("converting" in record.getMessage() for record in caplog.records)
    stamps = {path.name: path.stat().st_mtime_ns for path in first.iterdir()}
    folder_stamp = first.stat().st_mtime_ns

    caplog.clear()
    second = convert.ensure_converted("FP32", tmp_path)

    assert second == first
    assert not any("converting" in record.getMessage() for record in caplog.records)
    assert any("nothing to convert" in record.getMessage() for record in caplog.records)
    assert {path.name: path.stat().st_mtime_ns for path in second.iterdir()} == stamps
    assert second.stat().st_mtime_ns == folder_stamp
    assert [path.name for path in tmp_path.iterdir()] == [first.name]


def test_fp16_conversion_close_to_fp32(tmp_path, ir_dir, embedder, bundled_crops):
    _, crops = bundled_crops
    fp16_dir = convert.ensure_converted("FP16", tmp_path)
    info = convert.read_ir_info(fp16_dir)
    assert info["precision"] == "FP16"
    fp32_size = (ir_dir / "facenet.bin").stat().st_size
    fp16_size = (fp16_dir / "facenet.bin").stat().st_size
    assert fp16_size < 0.55 * fp32_size, f"FP16 weights are {fp16_size} bytes, FP32 {fp32_size}"

    fp16 = Embedder(fp16_dir).embed(crops)
    fp32 = embedder.embed(crops)
    assert _cosines(fp16, fp32).min() >= MIN_COSINE_FP16
    assert not np.array_equal(fp16, fp32)


def test_precision_hint_reads_back_f32(ir_dir, embedder, detector, caplog):
    import openvino as ov

    for model in (embedder.model, detector.pnet, detector.rnet, detector.onet):
        assert model.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32

    caplog.set_level(logging.DEBUG, logger="kubeface.runtime")
    runtime.compile_ir(ir_dir / "facenet.xml")
    messages = [record.getMessage() for record in caplog.records]
    assert any("INFERENCE_PRECISION_HINT" in text and "float32" in text for text in messages), messages
