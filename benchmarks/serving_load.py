"""Load benchmark of the predictor on loopback: latency, throughput and readiness under load.

Starts `kubeface serve` on 127.0.0.1, then for a one-face photo and a group photo sends a
bounded number of raw-JPEG v1 requests at each concurrency, while a separate client polls
/v2/health/ready. The reference run, in the same session, recognizes the same photos in
this process with no server, one at a time, and an idle readiness poll precedes the load.

    python benchmarks/serving_load.py [--model URI] [--requests 40] [--group-requests 16]

Without --model, a model is trained from the bundled demo photos first (about 30 s). The
group photo is awkward/group/facenet-pytorch_multiface.jpg under $KUBEFACE_TEST_DATA, or --group.
Prints a Markdown table; --output also writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from kubeface.localrun import bundled_demo
from kubeface.serving.local import start_server

ONE_FACE_PHOTO = Path("test") / "Ariel_Sharon" / "Ariel_Sharon_0013.jpg"
GROUP_PHOTO = Path("awkward") / "group" / "facenet-pytorch_multiface.jpg"
READINESS_INTERVAL_S = 0.1


def train_demo_model(work: Path) -> str:
    """Train and publish a model from the bundled demo photos in this process; returns its URI."""
    from kubeface import convert, stages
    from kubeface.publish import run_publish
    from kubeface.validation import run_validate

    demo = bundled_demo()
    ir_dir = convert.ensure_converted("FP32")
    stages.run_fetch(str(demo / "dataset"), work / "fetch", str(demo / "test"))
    stages.run_align(str(work / "fetch" / "train"), ir_dir, work / "align",
                     test_dataset_uri=stages.test_folder(work / "fetch"))
    stages.run_embed(work / "align", ir_dir, work / "embed")
    stages.run_train([work / "embed"], work / "train")
    run_validate(work / "train", work / "validate", 0.9)
    return run_publish(str(work / "store"), "facenet-classifier", ir_dir, work / "train", work / "validate")


def percentiles(values: list[float]) -> dict:
    array = np.asarray(values, dtype=np.float64)
    return {"n": len(values), "p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99)),
            "max": float(array.max())}


class ReadinessPoller:
    """Polls /v2/health/ready every READINESS_INTERVAL_S in a thread and records each latency in ms."""

    def __init__(self, url: str):
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with httpx.Client(timeout=30) as session:
            while not self._stop.is_set():
                start = time.perf_counter()
                status = session.get(f"{self.url}/v2/health/ready").status_code
                self.latencies.append((time.perf_counter() - start) * 1000)
                self.failures += status != 200
                self._stop.wait(READINESS_INTERVAL_S)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_load(url: str, body: bytes, requests: int, concurrency: int, max_seconds: float) -> dict:
    """Send up to `requests` raw-JPEG requests from `concurrency` threads; stop early after max_seconds."""
    latencies, errors = [], []
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + max_seconds

    def worker():
        with httpx.Client(timeout=300) as session:
            while time.monotonic() < deadline:
                with lock:
                    if issued[0] >= requests:
                        return
                    issued[0] += 1
                start = time.perf_counter()
                response = session.post(url, content=body, headers={"Content-Type": "image/jpeg"})
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    (latencies if response.status_code == 200 else errors).append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return {"concurrency": concurrency, "completed": len(latencies), "errors": len(errors), "seconds": wall,
            "requests_per_s": len(latencies) / wall, **percentiles(latencies)}


def in_process_reference(model_uri: str, photo: Path, repeats: int) -> dict:
    """Recognize the photo `repeats` times in this process with no server; latencies in ms."""
    from kubeface.imageio import decode_image
    from kubeface.recognizer import Recognizer

    recognizer = Recognizer.from_uri(model_uri)
    data = photo.read_bytes()
    recognizer.recognize(decode_image(data))
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = recognizer.recognize(decode_image(data))
        latencies.append((time.perf_counter() - start) * 1000)
    return {"faces": len(result.faces), **percentiles(latencies)}


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal"))
    import openvino

    from kubeface import runtime

    return {"cpu": model, "cpus_available": len(os.sched_getaffinity(0)), "memory_gib": round(memory_kb / 2**20, 1),
            "inference_threads": runtime.inference_threads(), "python": platform.python_version(),
            "openvino": openvino.__version__}


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model URI or folder (default: train one from the demo photos)")
    parser.add_argument("--group", type=Path, help="group photo (default: $KUBEFACE_TEST_DATA/" f"{GROUP_PHOTO})")
    parser.add_argument("--requests", type=int, default=40, help="one-face requests per concurrency level")
    parser.add_argument("--group-requests", type=int, default=16, help="group-photo requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8], help="concurrency levels")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="time limit of each load level, in s")
    parser.add_argument("--output", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="kubeface-bench-"))
    model = args.model
    if model is None:
        # The stages print progress lines on stdout, which is kept for the results table.
        with contextlib.redirect_stdout(sys.stderr):
            model = train_demo_model(work)
    group = args.group
    if group is None:
        data = os.environ.get("KUBEFACE_TEST_DATA")
        if not data:
            parser.error("set KUBEFACE_TEST_DATA to the shared photo folder, or pass --group PHOTO")
        group = Path(data) / GROUP_PHOTO
    photos = {"one face": bundled_demo() / ONE_FACE_PHOTO, "group": group}
    requests = {"one face": args.requests, "group": args.group_requests}

    results = {"machine": machine(), "reference": {}, "load": [], "readiness_idle": None}
    for label, photo in photos.items():
        results["reference"][label] = in_process_reference(model, photo, min(requests[label], 20))
    server = start_server(model, log_dir=work)
    try:
        server.wait(f"/v2/models/{server.name}/ready")
        with ReadinessPoller(server.url) as idle:
            time.sleep(3.0)
        results["readiness_idle"] = percentiles(idle.latencies)
        for label, photo in photos.items():
            body = photo.read_bytes()
            run_load(server.predict_url, body, 2, 1, args.max_seconds)  # warm-up
            for concurrency in args.concurrency:
                with ReadinessPoller(server.url) as poller:
                    load = run_load(server.predict_url, body, requests[label], concurrency, args.max_seconds)
                load.update({"photo": label, "readiness": percentiles(poller.latencies),
                             "readiness_failures": poller.failures})
                results["load"].append(load)
                print(f"{label} c={concurrency}: {load['requests_per_s']:.2f} req/s, p50 {load['p50']:.0f} ms",
                      file=sys.stderr)
        results["server_peak_rss_mib"] = peak_rss_mib(server.process.pid)
    finally:
        server.stop()
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0


def markdown(results: dict) -> str:
    lines = ["| photo | concurrency | requests | req/s | x c=1 | p50 ms | p99 ms | p50 / in-process | "
             "ready p50 ms | ready p99 ms | ready max ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for load in results["load"]:
        base.setdefault(load["photo"], load["requests_per_s"])
        reference = results["reference"][load["photo"]]["p50"]
        ready = load["readiness"]
        lines.append(
            f"| {load['photo']} | {load['concurrency']} | {load['completed']} | {load['requests_per_s']:.2f} | "
            f"{load['requests_per_s'] / base[load['photo']]:.2f} | {load['p50']:.0f} | {load['p99']:.0f} | "
            f"{load['p50'] / reference:.2f} | {ready['p50']:.1f} | {ready['p99']:.1f} | {ready['max']:.1f} |"
        )
    idle = results["readiness_idle"]
    lines.append("")
    lines.append("In-process reference (no server, one at a time): " + ", ".join(
        f"{label} p50 {ref['p50']:.0f} ms ({ref['faces']} faces)" for label, ref in results["reference"].items()))
    lines.append(f"Readiness with no load: p50 {idle['p50']:.1f} ms, p99 {idle['p99']:.1f} ms.")
    lines.append(f"Server peak RSS: {results.get('server_peak_rss_mib') or float('nan'):.0f} MiB.")
    errors = sum(load["errors"] for load in results["load"])
    failures = sum(load["readiness_failures"] for load in results["load"])
    lines.append(f"Failed requests: {errors}; readiness answers other than 200: {failures}.")
    lines.append("Machine: " + json.dumps(results["machine"]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
