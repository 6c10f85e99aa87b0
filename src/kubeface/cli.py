"""The kubeface command line: run the pipeline locally, recognize faces, and more."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from kubeface import __version__
from kubeface.cli_benchmark import add_benchmark
from kubeface.cli_catalog import add_dataset, add_model
from kubeface.cli_grow import add_enroll
from kubeface.cli_kubeflow import add_submit
from kubeface.cli_serve import add_predict, add_serve
from kubeface.cli_types import fraction, positive_int
from kubeface.errors import InvalidInputError, KubefaceError

logger = logging.getLogger("kubeface")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_run(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the training pipeline locally with the KFP local runner")
    parser.add_argument("--dataset", help="photo folder <root>/<person>/<photo> or STORE/datasets/NAME/VERSION "
                        "(default: the bundled demo set)")
    parser.add_argument("--test-dataset", default=None, help="held-out photos in the same form "
                        "(default: the demo test set with the demo dataset, else a seeded split)")
    parser.add_argument("--unknown-dataset", default=None, help="photos of people absent from training, "
                        "<root>/<person>/<photo> or single photos at the root, used to choose and measure "
                        "the rejection thresholds (default: the demo's unknown people with the demo dataset, "
                        "else people left out of the training set)")
    parser.add_argument("--store", default="", help="catalog: a folder or s3://bucket/prefix "
                        "(default: $KUBEFACE_STORE or ~/.kubeface/store)")
    parser.add_argument("--s3-endpoint", default="", help="S3 endpoint URL, http://host:port for no TLS "
                        "(default: $KUBEFACE_S3_ENDPOINT)")
    parser.add_argument("--model-name", default="facenet-classifier", help="catalog name of the model")
    parser.add_argument("--min-accuracy", type=fraction, default=0.9,
                        help="held-out accuracy needed to publish, in [0, 1]")
    parser.add_argument("--not-worse", action="store_true", help="also require accuracy at least that of the "
                        "version currently published under --model-name, on the same test photos")
    parser.add_argument("--target-far", type=fraction, default=0.01, help="false-accept rate of unknown people at "
                        "which the rejection thresholds are chosen, in [0, 1) (default: 0.01)")
    parser.add_argument("--no-embedding-cache", action="store_true", help="align and embed every photo "
                        "instead of reusing the store's cached crops and embeddings")
    parser.add_argument("--margin", type=int, default=24, help="pixels added around each face box in total")
    parser.add_argument("--image-size", type=int, default=160, help="side of the face crop in pixels")
    parser.add_argument("--precision", default="FP32", choices=["FP32", "FP16"], help="IR weight precision")
    parser.add_argument("--shards", type=positive_int, default=1, help="parallel align and embed tasks (>= 1)")
    parser.add_argument("--pipeline-root", default=None, help="folder for run artifacts "
                        "(default: ~/.kubeface/runs)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    parser.add_argument("--verbose", action="store_true", help="show the local runner's full log")
    parser.set_defaults(handler=cmd_run)


def cmd_run(args) -> int:
    from kubeface.catalog import check_name
    from kubeface.localrun import bundled_demo, run_pipeline
    from kubeface.rejection import check_target_far

    # Checked here too, so a bad value fails before photos are aligned and embedded.
    check_name(args.model_name)
    check_target_far(args.target_far)
    dataset, test_dataset, unknown_dataset = args.dataset, args.test_dataset, args.unknown_dataset
    if dataset is None:
        dataset = str(bundled_demo() / "dataset")
        if test_dataset is None:
            test_dataset = str(bundled_demo() / "test")
        if unknown_dataset is None:
            unknown_dataset = str(bundled_demo() / "unknown")
    arguments = {
        "dataset_uri": _absolute(dataset), "test_dataset_uri": _absolute(test_dataset or ""),
        "store_uri": _absolute(args.store), "s3_endpoint": args.s3_endpoint, "model_name": args.model_name,
        "min_accuracy": args.min_accuracy, "margin": args.margin, "image_size": args.image_size,
        "precision": args.precision, "shards": args.shards,
        "unknown_dataset_uri": _absolute(unknown_dataset or ""), "target_far": args.target_far,
        "require_not_worse": args.not_worse, "embedding_cache": not args.no_embedding_cache,
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
    several = summary.get("several_faces", [])
    if several:
        lines.append(f"several faces: {len(several)} photos (the largest face nearest the centre was used)")
    lines += [f"note: {item['path']}: {item['reason']}" for item in summary.get("notes", [])]
    lines += _growth_lines(summary)
    lines.append(f"published: {summary['model_uri']}" if summary["published"] else "published: no")
    lines.append(f"time: {summary['seconds']} s")
    print("\n".join(lines), file=sys.stderr)


def _growth_lines(summary: dict) -> list[str]:
    """Return the summary lines on rejection, the comparison with the published version and the cache."""
    lines = []
    rejection = summary.get("rejection") or {}
    if rejection:
        far = rejection["false_accept_rate"]
        lines.append(f"unknown faces: rejected when distance > {rejection['max_distance']:.4f} or probability < "
                     f"{rejection['min_probability']:.4f}; true-accept rate {rejection['true_accept_rate']:.4f}, "
                     f"false-accept rate {'n/a' if far is None else f'{far:.4f}'} (target {rejection['target_far']})")
    comparison = summary.get("comparison")
    if comparison:
        before = comparison["accuracy_before"]
        lines.append(f"compared with {comparison['version']}: accuracy "
                     f"{'n/a' if before is None else f'{before:.4f}'} -> {comparison['accuracy_after']:.4f} "
                     f"({comparison['basis']}); added {comparison['people_added'] or 'nobody'}, "
                     f"removed {comparison['people_removed'] or 'nobody'}")
    cache = summary.get("cache") or {}
    if cache.get("enabled"):
        lines.append(f"embedding cache: {cache['hits']} hits, {cache['misses']} misses, "
                     f"{cache['embedded']} faces embedded")
    if summary.get("duplicates"):
        lines.append(f"duplicates dropped: {summary['duplicates']} (listed under skipped)")
    return lines


def add_recognize(subparsers) -> None:
    parser = subparsers.add_parser("recognize", help="recognize faces in image files with a published model")
    parser.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--model", required=True, help="model URI STORE/models/NAME/VERSION or a model folder")
    parser.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL (default: $KUBEFACE_S3_ENDPOINT)")
    parser.add_argument("--min-face-size", type=positive_int, default=None, help="smallest face to find, in pixels")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.set_defaults(handler=cmd_recognize)


def cmd_recognize(args) -> int:
    from kubeface.imageio import image_files, read_image
    from kubeface.recognizer import Recognizer

    files = image_files(args.paths)
    if not files:
        raise InvalidInputError(f"no image files found in {', '.join(args.paths)}; "
                                f"pass image files or folders that contain some")
    recognizer = Recognizer.from_uri(args.model, args.s3_endpoint)
    failures = 0
    for path in files:
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
            names = [_face_text(f) for f in result.faces]
            print(f"{path}: {', '.join(names) if names else 'no face'}")
    return 1 if failures else 0


def _face_text(face) -> str:
    """Return "name (probability)", or "unknown" with the nearest known person for a rejected face."""
    if face.label is not None:
        return f"{face.label} ({face.probability:.2f})"
    if face.nearest is None:
        return "unknown"
    return f"unknown (nearest {face.nearest}, distance {face.distance:.3f}, probability {face.probability:.2f})"


def add_compile(subparsers) -> None:
    parser = subparsers.add_parser("compile", help="write the pipeline and each component as KFP YAML")
    parser.add_argument("--output", default=None, help="YAML file to write (default: the packaged pipeline file)")
    parser.add_argument("--components-dir", default=None, help="folder for one YAML per component "
                        "(default: the packaged components folder, and none when --output is given)")
    parser.set_defaults(handler=cmd_compile)


def cmd_compile(args) -> int:
    from kubeface.components import COMPONENTS_DIR, compile_components
    from kubeface.pipelines.training import COMPILED_YAML, compile_pipeline

    output = Path(args.output) if args.output else COMPILED_YAML
    if output.suffix != ".yaml" or not output.parent.is_dir():
        raise InvalidInputError(f"invalid --output {args.output}: expected a .yaml file in an existing folder")
    print(compile_pipeline(output))
    components_dir = args.components_dir or (None if args.output else COMPONENTS_DIR)
    if components_dir:
        for path in compile_components(Path(components_dir)):
            print(path)
    return 0


COMMANDS = [add_run, add_recognize, add_compile, add_dataset, add_model, add_enroll, add_serve, add_predict,
            add_submit, add_benchmark]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubeface", description="Face recognition pipelines for Kubeflow.")
    parser.add_argument("--version", action="version", version=f"kubeface {__version__}")
    parser.add_argument("--log-level", default="WARNING", type=str.upper, choices=LOG_LEVELS,
                        help="logging level (default: %(default)s)")
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
        if getattr(args, "json", False):
            # Scripts that read the last stdout line get the error too.
            print(json.dumps({"error": str(error)}, ensure_ascii=False))
        return 2
    except BrokenPipeError:
        # The reader of stdout went away (`kubeface model list | head`); that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        # Catalog versions are sealed last, so an interrupted command leaves nothing half-published.
        print("kubeface: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
