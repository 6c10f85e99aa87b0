"""Container image references: the single place that names kubeface's images and tags."""

from kubeface import __version__

REGISTRY = "ghcr.io/kubeface"
COMPONENT_IMAGE = f"{REGISTRY}/kubeface:{__version__}"
"""Image every pipeline stage runs in (kubeface with TensorFlow-free OpenVINO runtime, kfp)."""
PREDICTOR_IMAGE = f"{REGISTRY}/kubeface-predictor:{__version__}"
"""Image of the KServe custom predictor."""
