"""`kubeface benchmark lfw`: face verification accuracy on LFW through kubeface's own pipeline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kubeface.align import ALIGN_METHODS, AlignSettings
from kubeface.cli_types import positive_int
from kubeface.embed import STANDARDIZATIONS, EmbedSettings


def add_benchmark(subparsers) -> None:
    parser = subparsers.add_parser("benchmark", help="measure accuracy on a public benchmark")
    benchmarks = parser.add_subparsers(dest="benchmark", required=True)
    add_lfw(benchmarks)


def add_lfw(subparsers) -> None:
    from kubeface.lfw import DISTANCES, BenchmarkSettings

    align, embed, benchmark = AlignSettings(), EmbedSettings(), BenchmarkSettings()
    parser = subparsers.add_parser(
        "lfw", help="LFW face verification: detect, align and embed every photo of the pairs, then score",
        description="Score face verification on Labeled Faces in the Wild. With View 2's pairs.txt: the "
                    "10-fold protocol. With View 1: --pairs pairsDevTest.txt --train-pairs pairsDevTrain.txt.",
    )
    parser.add_argument("--lfw-dir", required=True, help="folder of <Person>/<Person>_NNNN.jpg photos")
    parser.add_argument("--pairs", required=True, help="LFW pairs file to score (pairs.txt, pairsDevTest.txt)")
    parser.add_argument("--train-pairs", default=None,
                        help="pairs file to choose the thresholds on (pairsDevTrain.txt); without it, the "
                             "thresholds of each fold are chosen on the other folds")
    parser.add_argument("--folds", type=int, default=benchmark.folds,
                        help="folds to cut a pairs file with a single set into, when --train-pairs is not given")
    parser.add_argument("--margin", type=int, default=align.margin,
                        help="pixels added around each face box in total, before resizing")
    parser.add_argument("--align", default=align.method, choices=ALIGN_METHODS,
                        help="box: box plus margin stretched to a square; similarity: five-landmark similarity "
                             "alignment onto the layout of box crops")
    parser.add_argument("--standardization", default=embed.standardization, choices=STANDARDIZATIONS,
                        help="network input scaling: fixed (x - 127.5) / 128, or per_image whitening")
    parser.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=embed.add_mirrored,
                        help="add the embedding of the mirrored crop to the crop's own")
    parser.add_argument("--distance", default=benchmark.distance, choices=DISTANCES,
                        help="distance between embeddings: cosine (1 - cos) or euclidean")
    parser.add_argument("--subtract-mean", action=argparse.BooleanOptionalAction, default=benchmark.subtract_mean,
                        help="subtract the training pairs' mean embedding first (changes cosine distances only)")
    parser.add_argument("--far", type=float, default=benchmark.far_target,
                        help="false accept rate at which the validation rate is reported")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="face crops per FaceNet inference call")
    parser.add_argument("--precision", default="FP32", choices=["FP32", "FP16"], help="IR weight precision")
    parser.add_argument("--output-dir", default="lfw-benchmark", help="folder for roc.png and report.json")
    parser.add_argument("--no-cache", action="store_true",
                        help="detect and embed every photo again, without reading or writing the cache")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    parser.set_defaults(handler=cmd_lfw)


def _progress_factory(total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="photo", desc="embed", file=sys.stderr, mininterval=1.0)

    def advance(count: int) -> None:
        bar.update(count)
        if bar.n >= total:
            bar.close()

    return advance


def cmd_lfw(args) -> int:
    from kubeface import convert
    from kubeface.lfw import BenchmarkSettings, run_benchmark

    settings = BenchmarkSettings(
        align=AlignSettings(margin=args.margin, image_size=AlignSettings().image_size, method=args.align),
        embed=EmbedSettings(standardization=args.standardization, add_mirrored=args.mirror),
        distance=args.distance,
        subtract_mean=args.subtract_mean,
        far_target=args.far,
        folds=args.folds,
    )
    ir_dir = convert.ensure_converted(args.precision)
    summary = run_benchmark(
        Path(args.lfw_dir), Path(args.pairs), Path(args.train_pairs) if args.train_pairs else None, settings,
        Path(args.output_dir), ir_dir, batch_size=args.batch_size, use_cache=not args.no_cache,
        progress_factory=_progress_factory,
    )
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    return 0


def _print_summary(summary: dict) -> None:
    accuracy = f"accuracy: {summary['accuracy']:.4f}"
    if summary["accuracy_std"] is not None:
        accuracy += f" ± {summary['accuracy_std']:.4f}"
    lines = [
        f"{accuracy} on {summary['pairs']} pairs ({summary['protocol']})",
        f"validation rate: {summary['val_at_far']:.4f} at false accept rate {summary['far_target']:g} "
        f"(measured {summary['far']:.4f})",
        f"AUC: {summary['auc']:.5f}  EER: {summary['eer']:.4f} (max_distance {summary['eer_max_distance']:.3f})",
        f"photos: {summary['photos']}, no face detected: {summary['no_face']} (centre crop), "
        f"several faces: {summary['several_faces']}",
    ]
    if summary["dropped_pairs"]:
        lines.append(f"left out: {summary['dropped_pairs']} pairs naming absent photos: "
                     f"{', '.join(summary['absent_photos'][:5])}")
    lines.append(f"embedding: {summary['embed_seconds']} s wall, {summary['embed_cpu_seconds']} s CPU; "
                 f"{summary['photos_detected']} photos detected and {summary['crops_embedded']} crops embedded "
                 "in this run, the rest from the cache")
    lines.append(f"ROC: {summary['roc_png']}  report: {summary['report']}")
    print("\n".join(lines), file=sys.stderr)
