"""Container image references: the single place that names kubeface's images and tags.

`python -m kubeface.imagerefs component` (or `predictor`) prints a reference, so the Makefile
tags images with the same names the components and the deploy step use.
"""

import os
import sys

from kubeface import __version__

REGISTRY_ENV = "KUBEFACE_REGISTRY"
DEFAULT_REGISTRY = "ghcr.io/kubeface"
# Read when kubeface is imported, so a pipeline compiled with KUBEFACE_REGISTRY set points every
# task at that registry. The checked-in pipeline YAML is compiled without it.
REGISTRY = os.environ.get(REGISTRY_ENV, "").rstrip("/") or DEFAULT_REGISTRY
COMPONENT_IMAGE = f"{REGISTRY}/kubeface:{__version__}"
"""Image every pipeline stage runs in (kubeface with the OpenVINO runtime and kfp, no TensorFlow)."""
PREDICTOR_IMAGE = f"{REGISTRY}/kubeface-predictor:{__version__}"
"""Image of the KServe custom predictor."""
IMAGES = {"component": COMPONENT_IMAGE, "predictor": PREDICTOR_IMAGE}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in IMAGES:
        print(f"usage: python -m kubeface.imagerefs {{{','.join(IMAGES)}}}", file=sys.stderr)
        return 2
    print(IMAGES[argv[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
