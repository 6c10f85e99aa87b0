"""The kubeface command line: run the pipeline locally, recognize faces, and more."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from kubeface import __version__
from kubeface.cli_benchmark import add_benchmark
from kubeface.errors import KubefaceError

logger = logging.getLogger("kubeface")


def add_run(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the training pipeline locally with the KFP local runner")
    parser.add_argument("--dataset", help="photo folder <root>/<person>/<photo> or STORE/datasets/NAME/VERSION "
                        "(default: the bundled demo set)")
    parser.add_argument("--test-dataset", default=None, help="held-out photos in the same form "
                        "(default: the demo test set with the demo dataset, else a seeded split)")
    parser.add_argument("--store", default="", help="catalog: a folder or s3://bucket/prefix "
                        "(default: $KUBEFACE_STORE or ~/.kubeface/store)")
    parser.add_argument("--s3-endpoint", default="", help="S3 endpoint URL, http://host:port for no TLS "
                        "(default: $KUBEFACE_S3_ENDPOINT)")
    parser.add_argument("--model-name", default="facenet-classifier", help="catalog name of the model")
    parser.add_argument("--min-accuracy", type=float, default=0.9, help="held-out accuracy needed to publish")
    parser.add_argument("--margin", type=int, default=32, help="pixels added around each face box in total")
    parser.add_argument("--image-size", type=int, default=160, help="side of the face crop in pixels")
    parser.add_argument("--precision", default="FP32", choices=["FP32", "FP16"], help="IR weight precision")
    parser.add_argument("--shards", type=int, default=1, help="parallel align and embed tasks")
    parser.add_argument("--pipeline-root", default=None, help="folder for run artifacts "
                        "(default: ~/.kubeface/runs)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    parser.add_argument("--verbose", action="store_true", help="show the local runner's full log")
    parser.set_defaults(handler=cmd_run)


def cmd_run(args) -> int:
    from kubeface.localrun import bundled_demo, run_pipeline

    dataset, test_dataset = args.dataset, args.test_dataset
    if dataset is None:
        dataset = str(bundled_demo() / "dataset")
        if test_dataset is None:
            test_dataset = str(bundled_demo() / "test")
    arguments = {
        "dataset_uri": _absolute(dataset), "test_dataset_uri": _absolute(test_dataset or ""),
        "store_uri": _absolute(args.store), "s3_endpoint": args.s3_endpoint, "model_name": args.model_name,
        "min_accuracy": args.min_accuracy, "margin": args.margin, "image_size": args.image_size,
        "precision": args.precision, "shards": args.shards,
    }
    print(f"kubeface {__version__}: training from {arguments['dataset_uri']}", file=sys.stderr)
    summary = run_pipeline(arguments, args.pipeline_root, verbose=args.verbose)
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary["passed"] else 3


def _absolute(uri: str) -> str:
    """Make a local path absolute, since pipeline tasks run in other working folders."""
    if not uri or "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


def _print_summary(summary: dict) -> None:
    lines = [
        f"accuracy: {summary['accuracy']:.4f} on {summary['n_test']} held-out photos "
        f"({summary['n_train']} used for training)",
        f"gate: {'passed' if summary['passed'] else 'failed'} ({summary['reason']})",
        f"people: {len(summary['labels'])}: {', '.join(summary['labels'])}",
        f"skipped: {len(summary['skipped'])} files",
    ]
    lines += [f"  {item['path']}: {item['reason']}" for item in summary["skipped"][:20]]
    if len(summary["skipped"]) > 20:
        lines.append(f"  ... {len(summary['skipped']) - 20} more (see --json)")
    lines.append(f"published: {summary['model_uri']}" if summary["published"] else "published: no")
    lines.append(f"time: {summary['seconds']} s")
    print("\n".join(lines), file=sys.stderr)


def add_recognize(subparsers) -> None:
    parser = subparsers.add_parser("recognize", help="recognize faces in image files with a published model")
    parser.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--model", required=True, help="model URI STORE/models/NAME/VERSION or a model folder")
    parser.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL (default: $KUBEFACE_S3_ENDPOINT)")
    parser.add_argument("--min-face-size", type=int, default=None, help="smallest face to find, in pixels")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.set_defaults(handler=cmd_recognize)


def _image_files(paths: list[str]) -> list[Path]:
    from kubeface.imageio import IMAGE_SUFFIXES

    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(path)
    return files


def cmd_recognize(args) -> int:
    from kubeface.imageio import read_image
    from kubeface.recognizer import Recognizer

    recognizer = Recognizer.from_uri(args.model, args.s3_endpoint)
    failures = 0
    for path in _image_files(args.paths):
        try:
            result = recognizer.recognize(read_image(path), min_face_size=args.min_face_size)
        except (KubefaceError, OSError) as error:
            failures += 1
            message = str(error)
            if args.json:
                print(json.dumps({"image": str(path), "error": message}, ensure_ascii=False))
            else:
                print(f"{path}: error: {message}")
            continue
        if args.json:
            print(json.dumps({"image": str(path), **result.to_json()}, ensure_ascii=False))
        else:
            names = [f"{f.label or 'unknown'} ({f.probability:.2f})" for f in result.faces]
            print(f"{path}: {', '.join(names) if names else 'no face'}")
    return 1 if failures else 0


def add_compile(subparsers) -> None:
    parser = subparsers.add_parser("compile", help="write the pipeline as KFP YAML")
    parser.add_argument("--output", default=None, help="YAML file to write (default: the packaged pipeline file)")
    parser.set_defaults(handler=cmd_compile)


def cmd_compile(args) -> int:
    from kubeface.pipelines.training import COMPILED_YAML, compile_pipeline

    print(compile_pipeline(Path(args.output) if args.output else COMPILED_YAML))
    return 0


COMMANDS = [add_run, add_recognize, add_compile, add_benchmark]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeface", description="Face recognition pipelines for Kubeflow.")
    parser.add_argument("--version", action="version", version=f"kubeface {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="logging level (DEBUG, INFO, WARNING)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except KubefaceError as error:
        print(f"kubeface: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
