"""kubeface: face detection and recognition as Kubeflow Pipelines components."""

__version__ = "0.1.0"
