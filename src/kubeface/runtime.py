"""OpenVINO compile settings shared by every network: threads and inference precision."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)

_core = None


def cpu_quota(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Return the CPU limit of this container rounded up, or None when there is no limit.

    Reads cgroup v2 cpu.max ("max 100000" or "200000 100000") and falls back to cgroup v1's
    cpu.cfs_quota_us and cpu.cfs_period_us.
    """
    try:
        text = (cgroup_root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return max(1, math.ceil(int(text[0]) / int(text[1])))
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return None


def inference_threads() -> int:
    """Return the thread count for OpenVINO: $KUBEFACE_THREADS, else the CPU quota, else cores."""
    configured = os.environ.get("KUBEFACE_THREADS")
    if configured:
        return max(1, int(configured))
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = cpu_quota()
    return min(available or 1, quota) if quota else (available or 1)


def core():
    """Return the process-wide OpenVINO Core."""
    global _core
    if _core is None:
        import openvino as ov

        _core = ov.Core()
    return _core


def compile_ir(xml_path: Path, inference_precision: str = "f32"):
    """Compile one IR for the CPU with explicit threads and inference precision.

    The precision hint is set on purpose: on CPUs with AMX, OpenVINO defaults to bf16, which
    moves FaceNet's embeddings by more than the reference tolerance.
    """
    import openvino as ov

    config = {
        "INFERENCE_PRECISION_HINT": inference_precision,
        "INFERENCE_NUM_THREADS": inference_threads(),
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core().compile_model(str(xml_path), "CPU", config)
    logger.debug(
        "compiled %s: INFERENCE_PRECISION_HINT=%s INFERENCE_NUM_THREADS=%s (openvino %s)",
        xml_path.name,
        compiled.get_property("INFERENCE_PRECISION_HINT"),
        compiled.get_property("INFERENCE_NUM_THREADS"),
        ov.__version__,
    )
    return compiled
