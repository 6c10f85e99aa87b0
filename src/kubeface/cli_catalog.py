"""`kubeface dataset push|list|show|prune` and `kubeface model list|show|prune`: the catalog from the command line."""

from __future__ import annotations

import datetime as dt
import json
import sys

from kubeface.catalog import Catalog, parse_version, split_model_uri
from kubeface.errors import InvalidInputError, ModelError, NotFoundError

KINDS = {"dataset": "datasets", "model": "models"}
# A century: older claims cannot exist, and larger values overflow datetime arithmetic.
MAX_PRUNE_HOURS = 100 * 366 * 24


def _add_store_options(parser) -> None:
    parser.add_argument("--store", default=None, help="catalog: a folder or s3://bucket/prefix "
                        "(default: $KUBEFACE_STORE or ~/.kubeface/store)")
    parser.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL, http://host:port for no TLS "
                        "(default: $KUBEFACE_S3_ENDPOINT)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_dataset(subparsers) -> None:
    parser = subparsers.add_parser("dataset", help="push, list, show and prune dataset versions in the catalog")
    commands = parser.add_subparsers(dest="dataset_command", required=True)

    push = commands.add_parser("push", help="upload <DIR>/<person>/<photo> as a new, immutable dataset version")
    push.add_argument("folder", help="folder with one subfolder of photos per person")
    push.add_argument("--name", required=True, help="dataset name: lowercase letters, digits, '.', '_', '-'")
    push.add_argument("--version", required=True, help="version X.Y.Z; an existing version is never overwritten")
    push.add_argument("--replace-unfinished", action="store_true",
                      help="discard an unfinished upload of other files under the same version first")
    _add_store_options(push)
    push.set_defaults(handler=cmd_dataset_push)

    listing = commands.add_parser("list", help="list datasets and their versions")
    listing.add_argument("name", nargs="?", help="list only this dataset")
    _add_store_options(listing)
    listing.set_defaults(handler=cmd_list, kind="dataset")

    show = commands.add_parser("show", help="show one dataset version: people, photos, skipped files")
    show.add_argument("name", help="dataset name, or a URI STORE/datasets/NAME/VERSION")
    show.add_argument("version", nargs="?", help="version X.Y.Z (default: the latest)")
    show.add_argument("--files", action="store_true", help="also list every file with its sha256 and size")
    _add_store_options(show)
    show.set_defaults(handler=cmd_show, kind="dataset")
    _add_prune(commands, "dataset")


def add_model(subparsers) -> None:
    parser = subparsers.add_parser("model", help="list, show and prune published model versions")
    commands = parser.add_subparsers(dest="model_command", required=True)

    listing = commands.add_parser("list", help="list models and their versions with accuracy")
    listing.add_argument("name", nargs="?", help="list only this model")
    _add_store_options(listing)
    listing.set_defaults(handler=cmd_list, kind="model")

    show = commands.add_parser("show", help="show one model version: metrics, dataset, created, libraries")
    show.add_argument("name", help="model name, or a URI STORE/models/NAME/VERSION")
    show.add_argument("version", nargs="?", help="version X.Y.Z (default: the latest)")
    show.add_argument("--files", action="store_true", help="also list every file with its sha256 and size")
    _add_store_options(show)
    show.set_defaults(handler=cmd_show, kind="model")
    _add_prune(commands, "model")


def _add_prune(commands, kind: str) -> None:
    prune = commands.add_parser(
        "prune", help=f"delete the files of unfinished {kind} versions whose upload was abandoned")
    prune.add_argument("name", help=f"{kind} name")
    prune.add_argument("--older-than", type=float, required=True, metavar="HOURS",
                       help="prune only versions whose upload started at least this many hours ago; "
                            "choose far more than the longest upload")
    prune.add_argument("--dry-run", action="store_true", help="list what would be pruned and delete nothing")
    _add_store_options(prune)
    prune.set_defaults(handler=cmd_prune, kind=kind)


def cmd_dataset_push(args) -> int:
    from tqdm import tqdm

    from kubeface import datasets
    from kubeface.dataset_catalog import push

    photos, _ = datasets.scan_folder(args.folder, datasets.TRAIN)
    with tqdm(total=len(photos), desc="  push", unit="photo", file=sys.stderr, leave=False, disable=None) as bar:
        result = push(args.folder, args.name, args.version, args.store, args.s3_endpoint,
                      progress=lambda path, action: bar.update(1), replace_unfinished=args.replace_unfinished)
    print(f"pushed {sum(result.people.values())} photos of {len(result.people)} people: "
          f"{result.uploaded} uploaded, {result.present} already present, {len(result.skipped)} files skipped",
          file=sys.stderr)
    for item in result.skipped[:20]:
        print(f"  skipped {item['path']}: {item['reason']}", file=sys.stderr)
    print(json.dumps(result.to_json(), ensure_ascii=False) if args.json else result.uri)
    return 0


def _target(args) -> tuple[Catalog, str, str | None]:
    """Return the catalog, name and version that a show command names, by URI or by name."""
    kind = KINDS[args.kind]
    if f"/{kind}/" in args.name:
        if args.version:
            raise InvalidInputError(f"give either a URI or a name and version; got {args.name!r} and {args.version!r}")
        if kind == "models":
            store_uri, name, version = split_model_uri(args.name)
        else:
            from kubeface.dataset_catalog import split_dataset_uri

            parts = split_dataset_uri(args.name)
            if parts is None:
                raise InvalidInputError(f"invalid dataset URI {args.name!r}: expected STORE/datasets/NAME/VERSION")
            store_uri, name, version = parts
        return Catalog.open(store_uri, args.s3_endpoint), name, version
    if args.version:
        parse_version(args.version)
    return Catalog.open(args.store, args.s3_endpoint), args.name, args.version


def _summary(kind: str, uri: str, manifest: dict) -> dict:
    """Return the fields a list or show prints for one version."""
    metadata = manifest.get("metadata", {})
    row = {"name": manifest.get("name"), "version": manifest.get("version"), "uri": uri,
           "created": manifest.get("created"), "files": len(manifest.get("files", [])),
           "bytes": sum(entry.get("size", 0) for entry in manifest.get("files", []))}
    if kind == "datasets":
        row.update(people=len(metadata.get("people", [])), photos=metadata.get("photos"),
                   photos_per_person=metadata.get("photos_per_person", {}), skipped=metadata.get("skipped", []))
    else:
        dataset = metadata.get("dataset") or {}
        row.update(metrics=metadata.get("metrics", {}), labels=metadata.get("labels", []),
                   dataset=dataset, libraries=metadata.get("libraries", {}))
    return row


def cmd_list(args) -> int:
    kind = KINDS[args.kind]
    catalog = Catalog.open(args.store, args.s3_endpoint)
    names = [args.name] if args.name else catalog.names(kind)
    rows = []
    damaged = 0
    for name in names:
        for version in catalog.versions(kind, name):
            uri = catalog.store.child_uri(f"{kind}/{name}/{version}")
            try:
                manifest = catalog.manifest(kind, name, version)
            except ModelError as error:
                # One damaged version must not hide the others.
                print(f"kubeface: warning: {error}", file=sys.stderr)
                damaged += 1
                continue
            rows.append(_summary(kind, uri, manifest))
    status = 1 if damaged else 0
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return status
    if not rows:
        where = f"{args.kind} {args.name}" if args.name else f"{kind}"
        print(f"no {where} in {catalog.store.uri}", file=sys.stderr)
        return status
    if kind == "datasets":
        table = [("NAME", "VERSION", "CREATED", "PEOPLE", "PHOTOS")]
        table += [(r["name"], r["version"], r["created"], str(r["people"]), str(r["photos"])) for r in rows]
    else:
        table = [("NAME", "VERSION", "CREATED", "ACCURACY", "DATASET")]
        table += [(r["name"], r["version"], r["created"], _accuracy(r), _dataset_label(r["dataset"])) for r in rows]
    _print_table(table)
    return status


def _print_table(table: list[tuple[str, ...]]) -> None:
    """Print rows of text cells in left-aligned columns, the first row being the header."""
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def _accuracy(row: dict) -> str:
    accuracy = row["metrics"].get("accuracy")
    return f"{accuracy:.4f}" if isinstance(accuracy, (int, float)) else "-"


def _dataset_label(dataset: dict) -> str:
    if dataset.get("name") and dataset.get("version"):
        return f"{dataset['name']} {dataset['version']}"
    return dataset.get("uri") or "-"


def cmd_show(args) -> int:
    kind = KINDS[args.kind]
    catalog, name, version = _target(args)
    if version is None:
        versions = catalog.versions(kind, name)
        if not versions:
            raise NotFoundError(f"no version of {args.kind} {name} in {catalog.store.uri}; "
                                f"list them with: kubeface {args.kind} list")
        version = versions[-1]
    manifest = catalog.manifest(kind, name, version)
    row = _summary(kind, catalog.store.child_uri(f"{kind}/{name}/{version}"), manifest)
    if args.files:
        row["file_list"] = manifest.get("files", [])
    if args.json:
        print(json.dumps(row, ensure_ascii=False))
        return 0
    print("\n".join(_show_lines(args.kind, row)))
    return 0


def _show_lines(kind: str, row: dict) -> list[str]:
    lines = [f"{kind}: {row['name']} {row['version']}", f"uri: {row['uri']}", f"created: {row['created']}",
             f"files: {row['files']} ({row['bytes']} bytes)"]
    if kind == "dataset":
        lines.append(f"photos: {row['photos']} of {row['people']} people")
        lines += [f"  {person}: {count}" for person, count in row["photos_per_person"].items()]
        lines.append(f"skipped when pushed: {len(row['skipped'])} files")
        lines += [f"  {item['path']}: {item['reason']}" for item in row["skipped"]]
    else:
        metrics = row["metrics"]
        lines.append(f"accuracy: {_accuracy(row)} on {metrics.get('n_test', '?')} held-out photos "
                     f"({metrics.get('n_train', '?')} for training, gate {metrics.get('min_accuracy', '?')})")
        dataset = row["dataset"]
        lines.append(f"dataset: {_dataset_label(dataset)}" + (f" ({dataset['uri']})" if dataset.get("name") else ""))
        if dataset.get("digest"):
            lines.append(f"dataset digest: {dataset['digest']}")
        lines.append(f"people: {len(row['labels'])}: {', '.join(row['labels'])}")
        lines.append("libraries: " + ", ".join(f"{key} {value}" for key, value in sorted(row["libraries"].items())))
    for entry in row.get("file_list", []):
        lines.append(f"  {entry['sha256']}  {entry['size']:>10}  {entry['path']}")
    return lines


def cmd_prune(args) -> int:
    kind = KINDS[args.kind]
    if not 0 <= args.older_than <= MAX_PRUNE_HOURS:
        raise InvalidInputError(f"invalid --older-than {args.older_than}: expected hours from 0 to "
                                f"{MAX_PRUNE_HOURS}, for example 24")
    catalog = Catalog.open(args.store, args.s3_endpoint)
    rows = catalog.prune_unfinished(kind, args.name, dt.timedelta(hours=args.older_than), dry_run=args.dry_run)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no unfinished version of {args.kind} {args.name} in {catalog.store.uri}", file=sys.stderr)
        return 0
    table = [("VERSION", "OBJECTS", "ACTION", "REASON")]
    table += [(r["version"], str(r["objects"]), r["action"], r["reason"]) for r in rows]
    _print_table(table)
    return 0
