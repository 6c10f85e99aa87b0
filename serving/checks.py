"""Checks a loaded model must pass before the predictor reports ready.

They catch a wrong or damaged file at start-up instead of on the first request: the networks'
input and output shapes, the classifier's and gallery's dimensions, and one warm-up inference
that must give finite, L2-normalised embeddings.
"""

from __future__ import annotations

import numpy as np

from kubeface.convert import EMBEDDING_SIZE
from kubeface.errors import ModelError

# Input and output shapes of kubeface's MTCNN IRs; None matches any size, dynamic or static.
# The networks take images with height and width swapped, which square crops do not show.
MTCNN_SHAPES = {
    "pnet": ([None, None, None, 3], [[None, None, None, 4], [None, None, None, 2]]),
    "rnet": ([None, 24, 24, 3], [[None, 4], [None, 2]]),
    "onet": ([None, 48, 48, 3], [[None, 4], [None, 10], [None, 2]]),
}
NORM_TOLERANCE = 1e-3


def _matches(partial_shape, expected: list) -> bool:
    if partial_shape.rank.is_dynamic or partial_shape.rank.get_length() != len(expected):
        return False
    for dim, size in zip(partial_shape, expected):
        if size is not None and (dim.is_dynamic or dim.get_length() != size):
            return False
    return True


def _shape_text(expected: list) -> str:
    return "[" + ",".join("?" if size is None else str(size) for size in expected) + "]"


def check_network(compiled, path, expected_input: list, expected_outputs: list[list]) -> None:
    """Raise ModelError naming path when a compiled network's shapes differ from the expected ones."""
    inputs = [port.get_partial_shape() for port in compiled.inputs]
    outputs = [port.get_partial_shape() for port in compiled.outputs]
    valid = (
        len(inputs) == 1
        and _matches(inputs[0], expected_input)
        and len(outputs) == len(expected_outputs)
        and all(_matches(shape, expected) for shape, expected in zip(outputs, expected_outputs))
    )
    if not valid:
        expected_text = f"input {_shape_text(expected_input)} and outputs " + ", ".join(
            _shape_text(e) for e in expected_outputs
        )
        raise ModelError(
            f"{path} has inputs {[str(s) for s in inputs]} and outputs {[str(s) for s in outputs]}; "
            f"expected {expected_text}; the IR is not the one kubeface converts, so publish the model again"
        )


def check_recognizer(recognizer) -> None:
    """Check the networks, classifier and gallery of a loaded Recognizer; raises ModelError."""
    ir_dir = recognizer.folder / "ir"
    detector = recognizer.detector
    for name, compiled in (("pnet", detector.pnet), ("rnet", detector.rnet), ("onet", detector.onet)):
        expected_input, expected_outputs = MTCNN_SHAPES[name]
        check_network(compiled, ir_dir / f"{name}.xml", expected_input, expected_outputs)
    size = recognizer.align.image_size
    check_network(recognizer.embedder.model, ir_dir / "facenet.xml", [None, size, size, 3], [[None, EMBEDDING_SIZE]])
    _check_classifier(recognizer)


def _check_classifier(recognizer) -> None:
    folder = recognizer.folder / "classifier"
    classifier = recognizer.classifier
    classes = list(classifier.classes)
    if len(classes) < 2:
        raise ModelError(f"{folder / 'classifier.json'} lists {len(classes)} people; a model needs at least 2")
    if classifier.coef.ndim != 2 or classifier.coef.shape[1] != EMBEDDING_SIZE:
        raise ModelError(
            f"{folder / 'classifier.npz'} has weights of shape {classifier.coef.shape}; expected "
            f"[pairs, {EMBEDDING_SIZE}] for FaceNet's {EMBEDDING_SIZE}-dimensional embeddings"
        )
    labels = recognizer.info.get("labels")
    if labels is not None and list(labels) != classes:
        raise ModelError(
            f"{recognizer.folder / 'model.json'} lists people {labels} but the classifier has {classes}"
        )
    gallery = recognizer.gallery
    if gallery.ndim != 2 or gallery.shape[1] != EMBEDDING_SIZE or len(gallery) != len(recognizer.gallery_labels):
        raise ModelError(
            f"{folder / 'gallery.npz'} contains embeddings of shape {gallery.shape} and "
            f"{len(recognizer.gallery_labels)} labels; expected N x {EMBEDDING_SIZE} with N labels"
        )
    labels_array = recognizer.gallery_labels
    if len(labels_array) and (labels_array.min() < 0 or labels_array.max() >= len(classes)):
        raise ModelError(f"{folder / 'gallery.npz'} has labels outside 0..{len(classes) - 1}")


def warm_up(recognizer) -> None:
    """Run each network once: a uniform grey image through MTCNN, a grey crop through FaceNet.

    Raises ModelError when the embedding is not finite and of unit length, as FaceNet's are.
    """
    recognizer.detector.detect(np.full((96, 96, 3), 128, np.uint8))
    size = recognizer.align.image_size
    embedding = recognizer.embedder.embed(np.full((1, size, size, 3), 128, np.uint8))
    norm = float(np.linalg.norm(embedding[0])) if embedding.shape == (1, EMBEDDING_SIZE) else float("nan")
    if not np.all(np.isfinite(embedding)) or abs(norm - 1.0) > NORM_TOLERANCE:
        raise ModelError(
            f"{recognizer.folder / 'ir' / 'facenet.xml'} gave an embedding of shape {embedding.shape} and "
            f"norm {norm}; FaceNet embeddings are {EMBEDDING_SIZE} values of norm 1"
        )
    recognizer.classifier.predict(embedding)
