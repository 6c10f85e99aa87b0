"""Benchmark the models: FaceNet and MTCNN on OpenVINO against TensorFlow, and `kubeface run`.

Measures, in one process and one session:
- FaceNet faces per second at batch 1, 8 and 32, on OpenVINO (kubeface.embed) and on
  TensorFlow (the same frozen graph, with its batch dimension opened), on real face crops;
- MTCNN milliseconds per 640 x 480 photo, kubeface's detector against the mtcnn 1.0.0 package;
- the wall time of `kubeface run` on the bundled demo set, against the time the same photos
  take to detect, crop and embed in this process.

OpenVINO and TensorFlow runs alternate within each repeat and the tables give medians, so a
change in machine load affects both sides of a ratio alike. The figures replace the models
section of BENCHMARKS.md. Run from the repository root:

    KUBEFACE_TEST_DATA=/path/to/data .venv/bin/python benchmarks/bench_models.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from kubeface import convert, runtime, weights  # noqa: E402
from kubeface.align import AlignSettings, choose_face, crop_face  # noqa: E402
from kubeface.detect import Detector  # noqa: E402
from kubeface.embed import Embedder  # noqa: E402
from kubeface.imageio import read_image  # noqa: E402
from kubeface.localrun import bundled_demo  # noqa: E402

SECTION_START = "<!-- bench_models: start -->"
SECTION_END = "<!-- bench_models: end -->"
BATCH_SIZES = (1, 8, 32)
PHOTO_SIZE = (640, 480)
# Instruction sets that decide OpenVINO's CPU kernels and its default inference precision.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
# Shape constants of the frozen FaceNet graph that fix the batch at 1.
FACENET_BATCH_RESHAPES = {
    "InceptionResnetV1/Logits/Flatten/flatten/Reshape": [-1, 1792],
    "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1": [-1, 512],
}


def machine() -> dict:
    """Describe the CPU, the CPU share this process gets, and the load."""
    model, flags = platform.processor() or "unknown", []
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                flags = [flag for flag in CPU_FLAGS if flag in line.split(":", 1)[1].split()]
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu": f"{model} ({' '.join(flags) or 'no AVX2'})",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_quota": runtime.cpu_quota(),
        "openvino_threads": runtime.inference_threads(),
    }


def versions() -> str:
    names = ("openvino", "tensorflow-cpu", "mtcnn", "numpy", "opencv-python-headless", "kfp")
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def demo_crops(detector: Detector, count: int) -> np.ndarray:
    """Return count 160 x 160 face crops of the bundled training photos."""
    crops = []
    for path in sorted((bundled_demo() / "dataset").glob("*/*.jpg")):
        image = read_image(path)
        face = choose_face(detector.detect(image), image.shape)
        if face is not None:
            crops.append(crop_face(image, face, AlignSettings()))
        if len(crops) == count:
            break
    return np.stack(crops)


def tensorflow_facenet():
    """Return a function embedding N x 160 x 160 x 3 uint8 crops with the frozen graph in TensorFlow.

    The graph fixes the batch at 1 in its input and in two reshapes. This opens them to -1, and
    the caller checks the batched embeddings against OpenVINO's.
    """
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(weights.verified_path(weights.FACENET).read_bytes())
    nodes = {node.name: node for node in graph_def.node}
    nodes["input"].attr["shape"].shape.dim[0].size = -1
    for name, shape in FACENET_BATCH_RESHAPES.items():
        constant = nodes[nodes[name].input[1].split(":")[0]]
        constant.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.array(shape, dtype=np.int32)))
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)

    def embed(crops: np.ndarray, batch_size: int) -> np.ndarray:
        out = []
        for start in range(0, len(crops), batch_size):
            batch = (crops[start : start + batch_size].astype(np.float32) - 127.5) / 128.0
            out.append(session.run("embeddings:0", {"input:0": batch}))
        return np.concatenate(out)

    return embed


def timed(function, *args) -> tuple[float, float]:
    """Return the wall time and the CPU time of this process (all threads) of one call, in seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def medians(times: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(wall for wall, _ in times), statistics.median(cpu for _, cpu in times)


def single_thread_embedder(ir_dir: Path, batch_size: int) -> Embedder:
    """Return an Embedder compiled for one inference thread, through $KUBEFACE_THREADS."""
    saved = os.environ.get("KUBEFACE_THREADS")
    os.environ["KUBEFACE_THREADS"] = "1"
    try:
        return Embedder(ir_dir, batch_size=batch_size)
    finally:
        if saved is None:
            del os.environ["KUBEFACE_THREADS"]
        else:
            os.environ["KUBEFACE_THREADS"] = saved


def bench_facenet(ir_dir: Path, crops: np.ndarray, repeats: int) -> list[dict]:
    tensorflow_embed = tensorflow_facenet()
    rows = []
    for batch_size in BATCH_SIZES:
        embedder = Embedder(ir_dir, batch_size=batch_size)
        single_thread = single_thread_embedder(ir_dir, batch_size)
        openvino = embedder.embed(crops)
        single_thread.embed(crops)
        reference = tensorflow_embed(crops, batch_size)
        worst_cosine = float((openvino * reference).sum(axis=1).min())
        if worst_cosine < 0.9999:
            raise RuntimeError(f"TensorFlow at batch {batch_size} disagrees with OpenVINO: cosine {worst_cosine}")
        openvino_times, single_thread_times, tensorflow_times = [], [], []
        for _ in range(repeats):
            openvino_times.append(timed(embedder.embed, crops))
            single_thread_times.append(timed(single_thread.embed, crops))
            tensorflow_times.append(timed(tensorflow_embed, crops, batch_size))
        openvino_wall, openvino_cpu = medians(openvino_times)
        tensorflow_wall, tensorflow_cpu = medians(tensorflow_times)
        rows.append({
            "batch": batch_size,
            "openvino": len(crops) / openvino_wall,
            "openvino_1_thread": len(crops) / medians(single_thread_times)[0],
            "tensorflow": len(crops) / tensorflow_wall,
            "ratio": tensorflow_wall / openvino_wall,
            "openvino_cpu_ms": openvino_cpu / len(crops) * 1000,
            "tensorflow_cpu_ms": tensorflow_cpu / len(crops) * 1000,
            "cpu_ratio": tensorflow_cpu / openvino_cpu,
        })
    return rows


def bench_mtcnn(ir_dir: Path, data: Path, repeats: int) -> dict:
    from mtcnn import MTCNN

    photos = [cv2.resize(read_image(path), PHOTO_SIZE, interpolation=cv2.INTER_AREA)
              for path in sorted((data / "detect_boxes").glob("*.jpg"))]
    detector = Detector(ir_dir)
    reference = MTCNN()

    def run_kubeface():
        return sum(len(detector.detect(photo)) for photo in photos)

    def run_mtcnn():
        return sum(len(reference.detect_faces(photo, threshold_onet=0.7)) for photo in photos)

    faces = run_kubeface()
    reference_faces = run_mtcnn()
    kubeface_times, mtcnn_times = [], []
    for _ in range(repeats):
        kubeface_times.append(timed(run_kubeface))
        mtcnn_times.append(timed(run_mtcnn))
    kubeface_wall, kubeface_cpu = medians(kubeface_times)
    mtcnn_wall, mtcnn_cpu = medians(mtcnn_times)
    per_photo = 1000 / len(photos)
    return {"photos": len(photos), "faces": faces, "reference_faces": reference_faces,
            "kubeface_ms": kubeface_wall * per_photo, "mtcnn_ms": mtcnn_wall * per_photo,
            "ratio": mtcnn_wall / kubeface_wall, "kubeface_cpu_ms": kubeface_cpu * per_photo,
            "mtcnn_cpu_ms": mtcnn_cpu * per_photo, "cpu_ratio": mtcnn_cpu / kubeface_cpu}


def bench_run(ir_dir: Path) -> dict:
    """Time `kubeface run` on the bundled demo set, against detect, crop and embed in this process."""
    demo = bundled_demo()
    photos = sorted(demo.glob("dataset/*/*.jpg")) + sorted(demo.glob("test/*/*.jpg"))
    start = time.perf_counter()
    detector, embedder = Detector(ir_dir), Embedder(ir_dir)
    crops = []
    for path in photos:
        image = read_image(path)
        face = choose_face(detector.detect(image), image.shape)
        if face is not None:
            crops.append(crop_face(image, face, AlignSettings()))
    embedder.embed(np.stack(crops))
    in_process = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="kubeface-bench-") as home:
        # The run shares this process's IR cache, so it converts nothing, like any run after
        # the first.
        env = dict(os.environ, KUBEFACE_HOME=home, KUBEFACE_STORE=str(Path(home) / "store"),
                   KUBEFACE_CACHE=str(ir_dir.parent.parent))
        command = [sys.executable, "-m", "kubeface.cli", "run", "--json"]
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {"photos": len(photos), "wall": wall, "in_process": in_process, "ratio": wall / in_process,
            "accuracy": summary["accuracy"], "published": summary["published"]}


def render(info: dict, facenet: list[dict], detection: dict, run: dict | None, command: str) -> str:
    lines = [
        SECTION_START,
        "## Models: FaceNet and MTCNN on OpenVINO against TensorFlow",
        "",
        f"Command: `{command}` (benchmarks/bench_models.py), {info['date']}.",
        "",
        f"Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable, "
        f"CPU quota {info['cpu_quota'] or 'none'}), OpenVINO threads {info['openvino_threads']}. "
        f"Load average (1, 5, 15 min) at start {info['load_start']}, at end {info['load_end']}.",
        "",
        f"Versions: {info['versions']}. Medians of {info['repeats']} repeats after one warm-up; the "
        "two sides of each ratio alternate within every repeat. Other processes shared the CPUs, "
        "so wall-clock figures vary from run to run and favour the side that runs more threads. "
        "CPU time, summed over this process's threads, depends far less on the other load.",
        "",
        f"### FaceNet faces per second ({info['crops']} real 160 x 160 crops, f32)",
        "",
        "| Batch | OpenVINO faces/s | OpenVINO 1 thread | TensorFlow faces/s | Speed-up "
        "| OpenVINO CPU ms/face | TensorFlow CPU ms/face | CPU speed-up |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in facenet:
        lines.append(
            f"| {row['batch']} | {row['openvino']:.1f} | {row['openvino_1_thread']:.1f} "
            f"| {row['tensorflow']:.1f} | {row['ratio']:.2f} "
            f"| {row['openvino_cpu_ms']:.1f} | {row['tensorflow_cpu_ms']:.1f} | {row['cpu_ratio']:.2f} |"
        )
    lines += [
        "",
        "Speed-up is TensorFlow's time over OpenVINO's (above 1: OpenVINO is faster), both with "
        f"the threads kubeface chooses ({info['openvino_threads']}). The 1-thread column is "
        "OpenVINO compiled with KUBEFACE_THREADS=1. TensorFlow "
        "runs the same frozen graph with the batch dimension of its input and of two reshapes set "
        "to -1. Its embeddings match OpenVINO's (cosine >= 0.9999) at each batch size.",
        "",
        "### MTCNN milliseconds per 640 x 480 photo",
        "",
        f"{detection['photos']} photos from detect_boxes/ resized to 640 x 480; kubeface found "
        f"{detection['faces']} faces, mtcnn 1.0.0 {detection['reference_faces']}.",
        "",
        "| Detector | ms per photo | Relative | CPU ms per photo | Relative |",
        "|---|---:|---:|---:|---:|",
        f"| kubeface (OpenVINO) | {detection['kubeface_ms']:.1f} | 1.00 "
        f"| {detection['kubeface_cpu_ms']:.1f} | 1.00 |",
        f"| mtcnn 1.0.0 (TensorFlow) | {detection['mtcnn_ms']:.1f} | {detection['ratio']:.2f} "
        f"| {detection['mtcnn_cpu_ms']:.1f} | {detection['cpu_ratio']:.2f} |",
        "",
        "### `kubeface run` on the bundled demo set",
        "",
    ]
    if run is None:
        lines.append("Not measured in this run (--skip-run).")
    else:
        lines += [
            f"Wall time {run['wall']:.1f} s for {run['photos']} photos (accuracy {run['accuracy']:.4f}, "
            f"published: {run['published']}), with converted IRs already in the cache. Detecting, "
            f"cropping and embedding the same photos in one process took {run['in_process']:.1f} s, "
            f"so the pipeline takes {run['ratio']:.1f} times as long; the rest is the KFP local "
            "runner starting a Python process per task, training, validation and publishing.",
        ]
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this script's section of the benchmarks file, or append it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION_START in text and SECTION_END in text:
        before = text[: text.index(SECTION_START)]
        after = text[text.index(SECTION_END) + len(SECTION_END) :].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (default 5)")
    parser.add_argument("--crops", type=int, default=64, help="face crops embedded per repeat (default 64)")
    parser.add_argument("--skip-run", action="store_true", help="do not time `kubeface run`")
    parser.add_argument("--output", default="BENCHMARKS.md", help="Markdown file to update (default BENCHMARKS.md)")
    args = parser.parse_args(argv)
    data = os.environ.get("KUBEFACE_TEST_DATA")
    if not data or not (Path(data) / "detect_boxes").is_dir():
        parser.error("set KUBEFACE_TEST_DATA to the folder that contains detect_boxes/")

    info = machine()
    info.update(load_start=load_average(), versions=versions(), repeats=args.repeats,
                date=dt.date.today().isoformat())
    ir_dir = convert.ensure_converted("FP32")
    crops = demo_crops(Detector(ir_dir), args.crops)
    info["crops"] = len(crops)
    facenet = bench_facenet(ir_dir, crops, args.repeats)
    detection = bench_mtcnn(ir_dir, Path(data), args.repeats)
    run = None if args.skip_run else bench_run(ir_dir)
    info["load_end"] = load_average()

    command = "KUBEFACE_TEST_DATA=<data> .venv/bin/python benchmarks/bench_models.py"
    if argv or len(sys.argv) > 1:
        command += " " + " ".join(argv if argv is not None else sys.argv[1:])
    section = render(info, facenet, detection, run, command)
    write_section(Path(args.output), section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
