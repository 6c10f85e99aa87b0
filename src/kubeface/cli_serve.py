"""`kubeface serve` (the KServe predictor on this machine) and `kubeface predict` (its client)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from kubeface.cli_types import port_number, positive_int, positive_seconds
from kubeface.errors import ConfigurationError, InvalidInputError

logger = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 8080
DEFAULT_GRPC_PORT = 8081


def add_serve(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a published model over HTTP (KServe v1 and v2) and gRPC (v2)",
        description="Serve a published model with the KServe predictor. The server binds to --host only; "
        "use 0.0.0.0 inside a container.",
    )
    parser.add_argument("--model", required=True, help="model URI STORE/models/NAME/VERSION, a model folder, "
                        "or KServe's /mnt/models")
    parser.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL (default: $KUBEFACE_S3_ENDPOINT)")
    parser.add_argument("--name", default=None, help="name the model is served under, as in /v2/models/NAME "
                        "(default: the model's catalog name)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind the HTTP and gRPC servers to")
    parser.add_argument("--http-port", type=port_number, default=DEFAULT_HTTP_PORT,
                        help="HTTP port (default: %(default)s)")
    parser.add_argument("--grpc-port", type=port_number, default=DEFAULT_GRPC_PORT,
                        help="gRPC port (default: %(default)s)")
    parser.add_argument("--no-grpc", action="store_true", help="serve HTTP only")
    parser.add_argument("--max-body-bytes", type=int, default=None, help="largest request body or gRPC "
                        "message, in bytes (default: $KUBEFACE_SERVE_MAX_BODY_BYTES or 33554432)")
    parser.add_argument("--max-pixels", type=int, default=None, help="largest decoded size of one request's "
                        "images together, in pixels (default: $KUBEFACE_SERVE_MAX_PIXELS or 80000000)")
    parser.add_argument("--max-images", type=int, default=None, help="maximum number of images in one request "
                        "(default: $KUBEFACE_SERVE_MAX_IMAGES or 16)")
    parser.add_argument("--embed-batch-size", type=int, default=None, help="maximum number of faces embedded in one "
                        "FaceNet call (default: $KUBEFACE_SERVE_EMBED_BATCH_SIZE or 64)")
    parser.add_argument("--load-retry-seconds", type=int, default=None, help="how long to keep retrying a model "
                        "store it cannot reach (default: $KUBEFACE_SERVE_LOAD_RETRY_SECONDS or 600)")
    parser.add_argument("--no-ui", action="store_true", help="do not serve the upload page at / "
                        "(default: $KUBEFACE_SERVE_UI, on unless 0, false, no or off)")
    parser.set_defaults(handler=cmd_serve)


def cmd_serve(args) -> int:
    try:
        from kubeface.serving.predictor import FacePredictor
        from kubeface.serving.server import FaceModelServer
        from kubeface.serving.settings import ServingSettings
    except ImportError as error:
        raise ConfigurationError(
            f"kubeface serve needs kserve ({error}); install it with: pip install 'kubeface[serve]'"
        ) from error

    settings = ServingSettings.from_env(
        max_body_bytes=args.max_body_bytes, max_pixels=args.max_pixels, max_images=args.max_images,
        embed_batch_size=args.embed_batch_size, load_retry_seconds=args.load_retry_seconds,
        ui=False if args.no_ui else None,
    )
    name = args.name or served_name(args.model)
    # The settings in force and one line per request are logged at INFO; uvicorn.error logs where
    # the HTTP server listens.
    for logger_name in ("kubeface", "uvicorn.error"):
        if logging.getLogger(logger_name).getEffectiveLevel() > logging.INFO:
            logging.getLogger(logger_name).setLevel(logging.INFO)
    logger.info("serving %s as %r on %s: HTTP port %d, gRPC %s", args.model, name, args.host, args.http_port,
                "off" if args.no_grpc else f"port {args.grpc_port}")
    predictor = FacePredictor(name, args.model, settings=settings, s3_endpoint=args.s3_endpoint)
    server = FaceModelServer(host=args.host, settings=settings, http_port=args.http_port, grpc_port=args.grpc_port,
                             enable_grpc=not args.no_grpc)
    server.start([predictor])
    return 0


def served_name(model_uri: str) -> str:
    """Return the catalog name of a model URI or folder, without loading the model.

    A folder's name comes from its manifest.json; a catalog URI names it (STORE/models/NAME/VERSION).
    """
    from kubeface.catalog import MANIFEST, split_model_uri
    from kubeface.publish import DEFAULT_MODEL_NAME

    folder = Path(model_uri.removeprefix("file://")).expanduser()
    manifest = folder / MANIFEST
    if "://" not in model_uri.removeprefix("file://") and manifest.is_file():
        try:
            return json.loads(manifest.read_text(encoding="utf-8"))["name"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("cannot read the model name from %s (%s); serving as %s", manifest, error,
                           DEFAULT_MODEL_NAME)
            return DEFAULT_MODEL_NAME
    try:
        return split_model_uri(model_uri)[1]
    except InvalidInputError:
        logger.warning("%s is neither a model folder nor a catalog URI; serving as %s", model_uri, DEFAULT_MODEL_NAME)
        return DEFAULT_MODEL_NAME


def add_predict(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="send photos to a running predictor and print the faces")
    parser.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--url", required=True, help="the predictor's base URL (http://127.0.0.1:8080) or its "
                        "full v1 predict URL (.../v1/models/NAME:predict)")
    parser.add_argument("--name", default=None, help="served model name (default: the server's only model)")
    parser.add_argument("--annotate", default=None, metavar="PNG", help="write the photo with boxes and names "
                        "to this PNG file; with several photos, a number is added before the suffix")
    parser.add_argument("--min-face-size", type=positive_int, default=None, help="smallest face to find, in pixels")
    parser.add_argument("--timeout", type=positive_seconds, default=120.0, help="seconds to wait for each response")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.set_defaults(handler=cmd_predict)


def cmd_predict(args) -> int:
    from kubeface.imageio import image_files
    from kubeface.serving import client

    files = image_files(args.images)
    if not files:
        raise ConfigurationError(f"no image files found in {', '.join(args.images)}")
    if not args.url.startswith(("http://", "https://")):
        raise InvalidInputError(f"invalid --url {args.url!r}: expected http://HOST:PORT, for example "
                                "http://127.0.0.1:8080")
    if args.annotate and not Path(args.annotate).parent.is_dir():
        raise InvalidInputError(f"invalid --annotate {args.annotate}: folder {Path(args.annotate).parent} does "
                                "not exist; create it or choose another path")
    url = client.predict_url(args.url, args.name, timeout=args.timeout)
    options = {"annotate": bool(args.annotate)}
    if args.min_face_size is not None:
        options["min_face_size"] = args.min_face_size
    failures = 0
    # One request per photo, so a photo the server rejects fails alone and the others still get a result.
    for index, path in enumerate(files):
        try:
            prediction = client.predict_file(url, path, options, timeout=args.timeout)
        except (client.PredictorError, OSError) as error:
            if isinstance(error, client.PredictorError) and error.status_code >= 500:
                raise
            failures += 1
            _print_result(args, path, None, str(error))
            continue
        annotated = prediction.pop("annotated_image", None)
        if args.annotate and annotated is not None:
            target = client.annotated_path(Path(args.annotate), index, len(files))
            target.write_bytes(client.decode_annotated(annotated))
            prediction["annotated_path"] = str(target)
        _print_result(args, path, prediction, None)
    return 1 if failures else 0


def _print_result(args, path: Path, prediction: dict | None, error: str | None) -> None:
    from kubeface.serving import client

    if args.json:
        record = {"image": str(path), "error": error} if error else {"image": str(path), **prediction}
        print(json.dumps(record, ensure_ascii=False))
    elif error:
        print(f"{path}: error: {error}")
    else:
        print(f"{path}: {client.summary(prediction)}")

