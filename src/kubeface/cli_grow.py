"""`kubeface enroll`: add a person to a published model as a new version, without the pipeline."""

from __future__ import annotations

import sys


def add_enroll(subparsers) -> None:
    parser = subparsers.add_parser(
        "enroll",
        help="add a person to a published model and publish the result as a new version",
        description="Embed the person's photos with the model's own IRs, refit the classifier on the stored "
        "training embeddings plus these, choose new rejection thresholds and publish the next "
        "version. The parent version stays as it is. `kubeface run` remains the audited path, "
        "with test photos and an accuracy gate.",
    )
    parser.add_argument(
        "images", nargs="+", help="photos of the person: image files or folders (searched recursively)"
    )
    parser.add_argument(
        "--model",
        required=True,
        help="model URI STORE/models/NAME/VERSION, or a model folder "
        "together with --store and --model-name",
    )
    parser.add_argument("--person", required=True, help="the person's name, exactly as it should be returned")
    parser.add_argument(
        "--store", default=None, help="store for the new version (default: the model URI's store)"
    )
    parser.add_argument(
        "--model-name", default=None, help="name of the new version (default: the model URI's name)"
    )
    parser.add_argument(
        "--s3-endpoint", default=None, help="S3 endpoint URL (default: $KUBEFACE_S3_ENDPOINT)"
    )
    parser.add_argument(
        "--target-far",
        type=float,
        default=None,
        help="false-accept rate at which the new "
        "rejection thresholds are chosen, in [0, 1) (default: the parent model's)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as one JSON object on the last line"
    )
    parser.set_defaults(handler=cmd_enroll)


def cmd_enroll(args) -> int:
    from kubeface.enroll import enroll, summary_text, to_json
    from kubeface.imageio import image_files

    result = enroll(
        args.model,
        args.person,
        image_files(args.images),
        store_uri=args.store,
        model_name=args.model_name,
        s3_endpoint=args.s3_endpoint,
        target_far=args.target_far,
    )
    print(summary_text(result), file=sys.stderr)
    if args.json:
        print(to_json(result))
    else:
        print(result["model_uri"])
    return 0
