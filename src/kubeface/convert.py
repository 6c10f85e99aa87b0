"""Convert the pretrained FaceNet and MTCNN weights to OpenVINO IR, cached by checksum."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from kubeface import weights
from kubeface.errors import ChecksumError, InvalidInputError
from kubeface.store import new_folder

logger = logging.getLogger(__name__)

PRECISIONS = ("FP32", "FP16")
# Bump when the conversion itself changes, so cached IRs made the old way are not reused.
CONVERT_FORMAT = 1
IR_NAMES = ("facenet", "pnet", "rnet", "onet")
IR_INFO_FILE = "ir.json"
FACENET_SIZE = 160
EMBEDDING_SIZE = 512
# The frozen graph reshapes the bottleneck to a fixed [1, 512]; this node gets a -1 batch.
FACENET_FIXED_RESHAPE = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1"


def default_cache_dir() -> Path:
    """Return the folder for converted IRs: $KUBEFACE_CACHE, else ~/.cache/kubeface."""
    root = os.environ.get("KUBEFACE_CACHE") or os.path.join(Path.home(), ".cache", "kubeface")
    return Path(root) / "ir"


def check_precision(precision: str) -> str:
    """Normalise a precision name and reject anything but FP32 and FP16."""
    value = precision.upper()
    if value not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    return value


def cache_key(precision: str) -> str:
    """Name the cache entry after the weights' checksums, precision and converter versions."""
    import hashlib

    import openvino

    parts = [w.sha256 for w in weights.ALL_WEIGHTS]
    parts += [precision, str(CONVERT_FORMAT), openvino.__version__]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _facenet_dynamic_batch(model):
    """Give the FaceNet graph a dynamic batch dimension.

    The frozen graph fixes the batch at 1 in the input placeholder and in one reshape of the
    bottleneck. Its flatten reshape ([1, -1] in the graph) reaches OpenVINO as [-1, 1792], so it
    follows the batch without a patch; a test checks batched embeddings against batch 1.
    """
    import openvino as ov

    fixed = [op for op in model.get_ordered_ops() if op.get_friendly_name() == FACENET_FIXED_RESHAPE]
    if len(fixed) != 1:
        raise ChecksumError(f"FaceNet graph has no node {FACENET_FIXED_RESHAPE}; wrong weights file")
    new_shape = ov.opset13.constant(np.array([-1, EMBEDDING_SIZE], dtype=np.int64))
    fixed[0].input(1).replace_source_output(new_shape.output(0))
    model.reshape({model.inputs[0]: ov.PartialShape([-1, FACENET_SIZE, FACENET_SIZE, 3])})
    return model


def _convert_one(name: str, source: Path):
    import openvino as ov

    model = ov.convert_model(str(source))
    if name == "facenet":
        model = _facenet_dynamic_batch(model)
    elif name == "pnet":
        model.reshape({model.inputs[0]: ov.PartialShape([-1, -1, -1, 3])})
    else:
        side = 24 if name == "rnet" else 48
        model.reshape({model.inputs[0]: ov.PartialShape([-1, side, side, 3])})
    return model


def convert_all(output_dir: Path, precision: str = "FP32") -> dict:
    """Convert all four networks into output_dir and write ir.json describing them."""
    import openvino as ov

    precision = check_precision(precision)
    output_dir.mkdir(parents=True, exist_ok=True)
    sources = {w.name: weights.verified_path(w) for w in weights.ALL_WEIGHTS}
    files = {}
    for name in IR_NAMES:
        model = _convert_one(name, sources[name])
        xml_path = output_dir / f"{name}.xml"
        # save_model compresses weights to FP16 by default, so FP32 has to be asked for.
        ov.save_model(model, str(xml_path), compress_to_fp16=(precision == "FP16"))
        files[name] = {
            "xml": xml_path.name,
            "bin": f"{name}.bin",
            "xml_sha256": weights.sha256_file(xml_path),
            "bin_sha256": weights.sha256_file(output_dir / f"{name}.bin"),
        }
    info = {
        "format": CONVERT_FORMAT,
        "precision": precision,
        "openvino": ov.__version__,
        "sources": {w.name: {"distribution": f"{w.distribution}=={w.version}",
                             "path": w.relative_path, "sha256": w.sha256}
                    for w in weights.ALL_WEIGHTS},
        "files": files,
    }
    (output_dir / IR_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))
    return info


def read_ir_info(ir_dir: Path) -> dict:
    """Read ir.json and verify every IR file's sha256 against it."""
    info_path = ir_dir / IR_INFO_FILE
    if not info_path.is_file():
        raise ChecksumError(f"{info_path} is missing; run the convert stage again")
    info = json.loads(info_path.read_text())
    for name, entry in info["files"].items():
        for kind in ("xml", "bin"):
            path = ir_dir / entry[kind]
            if not path.is_file():
                raise ChecksumError(f"IR file {path} is missing; run the convert stage again")
            actual = weights.sha256_file(path)
            if actual != entry[f"{kind}_sha256"]:
                raise ChecksumError(
                    f"IR file {path} has sha256 {actual}, expected {entry[f'{kind}_sha256']}"
                )
    return info


def ensure_converted(precision: str = "FP32", cache_dir: Path | None = None) -> Path:
    """Return a folder of verified IRs, converting only when the cache has none for these weights."""
    precision = check_precision(precision)
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / cache_key(precision)
    if (target / IR_INFO_FILE).is_file():
        try:
            read_ir_info(target)
            logger.info("IRs found in cache %s; nothing to convert", target)
            return target
        except ChecksumError as error:
            logger.warning("cached IRs in %s are damaged (%s); converting again", target, error)
            shutil.rmtree(target, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = new_folder(cache_dir, ".convert-")
    try:
        logger.info("converting FaceNet and MTCNN to OpenVINO IR (%s)", precision)
        convert_all(staging, precision)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process finished the same conversion first; its result is identical.
            if not (target / IR_INFO_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def copy_irs(source: Path, destination: Path) -> dict:
    """Copy a verified IR folder to destination and return its ir.json content."""
    info = read_ir_info(source)
    destination.mkdir(parents=True, exist_ok=True)
    names = [IR_INFO_FILE] + [entry[k] for entry in info["files"].values() for k in ("xml", "bin")]
    for name in names:
        shutil.copy2(source / name, destination / name)
    return info
