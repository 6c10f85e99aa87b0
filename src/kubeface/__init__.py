"""kubeface: face detection and recognition as Kubeflow Pipelines components."""

import sys

# `import openvino` (2026.4) sends a usage event through the openvino-telemetry package unless
# the user has opted out, and ov.convert_model sends more. OpenVINO falls back to a no-op stub
# when that package cannot be imported, so blocking the import here keeps kubeface from sending
# anything. It has no effect when openvino was imported before kubeface.
sys.modules.setdefault("openvino_telemetry", None)

__version__ = "0.1.0"
