"""The work of each pipeline stage, as plain functions over folders and strings.

Every KFP component calls exactly one of these, so the same code runs in a cluster pod, in
the local runner and in tests.
"""

from __future__ import annotations

import collections
import json
import logging
import platform
from pathlib import Path

import numpy as np

from kubeface import __version__, convert, dataset_checks, datasets
from kubeface.align import AlignSettings, choose_face, crop_face
from kubeface.convert import EMBEDDING_SIZE
from kubeface.embed import EmbedSettings
from kubeface.errors import DatasetError, KubefaceError
from kubeface.progress import StageProgress

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
CROPS_FILE = "crops.npz"
EMBEDDINGS_FILE = "embeddings.npz"
SPLIT_FILE = "split.json"
GALLERY_FILE = "gallery.npz"
REPORT_FILE = "report.json"
DEFAULT_TEST_FRACTION = 0.25


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True), encoding="utf-8")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def run_convert(output_dir: Path, precision: str = "FP32") -> dict:
    """Convert (or take from the cache) the IRs and copy them into output_dir."""
    cached = convert.ensure_converted(precision)
    return convert.copy_irs(cached, Path(output_dir))


def resolve_dataset(uri: str, s3_endpoint: str = "") -> tuple[Path, dict]:
    """Return a local folder for a dataset path or catalog URI, with the dataset's identity."""
    from kubeface import dataset_catalog

    return dataset_catalog.resolve(uri, s3_endpoint or None)


def run_align(
    dataset_uri: str,
    ir_dir: Path,
    output_dir: Path,
    test_dataset_uri: str = "",
    shard_index: int = 0,
    shard_count: int = 1,
    margin: int = 24,
    image_size: int = 160,
    s3_endpoint: str = "",
    unknown_dataset_uri: str = "",
    use_cache: bool = False,
    store_uri: str = "",
) -> dict:
    """Detect, choose and crop the face of every photo in one shard of the dataset.

    Writes crops.npz (N x S x S x 3 uint8, aligned photos only) and index.json with one row
    per input file. A row has the status (aligned, no_face, unreadable) and the number of
    faces found. several_faces marks photos where choose_face picked one of several, and
    exif_orientation is set when the photo was rotated by its EXIF tag. With use_cache, photos
    found in the face cache of the store (store_uri, "" for the default store) are not
    detected again, and crops.npz also contains their cached embeddings.
    """
    from kubeface.detect import DetectorSettings

    settings = AlignSettings(margin=margin, image_size=image_size)
    train_root, train_identity = resolve_dataset(dataset_uri, s3_endpoint)
    test_root, test_identity = (None, None)
    if test_dataset_uri:
        test_root, test_identity = resolve_dataset(test_dataset_uri, s3_endpoint)
    unknown_root, unknown_identity = (None, None)
    if unknown_dataset_uri:
        unknown_root, unknown_identity = resolve_dataset(unknown_dataset_uri, s3_endpoint)
    plan_path = train_root.parent / "plan.json"
    if plan_path.is_file():
        # A fetch output: the identity is the one of the original URI, not of the copy.
        plan = read_json(plan_path)
        train_identity, test_identity = plan["dataset"], plan["test_dataset"]
        unknown_identity = plan.get("unknown_dataset")
    photos, skipped = datasets.scan_dataset(train_root, test_root, unknown_root)
    if plan_path.is_file():
        skipped += [datasets.Skipped(**item) for item in read_json(plan_path).get("not_copied", [])]
    mine = datasets.shard(photos, shard_index, shard_count)
    ir_info = convert.read_ir_info(Path(ir_dir))
    cache = None
    if use_cache:
        from kubeface.facecache import FaceCache

        cache = FaceCache.open(store_uri, s3_endpoint, ir_info, settings, DetectorSettings())
    rows, crops, embeddings = _align_photos(mine, Path(ir_dir), settings, cache)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    size = settings.image_size
    np.savez(output_dir / CROPS_FILE, crops=np.asarray(crops, np.uint8).reshape(-1, size, size, 3),
             embeddings=np.asarray(embeddings, np.float32).reshape(-1, EMBEDDING_SIZE))
    index = {
        "rows": rows,
        "skipped": [s.to_json() for s in skipped] if shard_index == 0 else [],
        "align": settings.to_json(),
        "dataset": train_identity,
        "test_dataset": test_identity,
        "unknown_dataset": unknown_identity,
        "shard": [shard_index, shard_count],
        "facenet": ir_info["files"]["facenet"],
        "cache": _cache_counts(cache),
    }
    write_json(output_dir / INDEX_FILE, index)
    aligned = sum(1 for r in rows if r["status"] == "aligned")
    logger.info("shard %d/%d: %d of %d photos aligned, %d from the cache", shard_index, shard_count, aligned,
                len(rows), cache.hits if cache else 0)
    return {"aligned": aligned, "photos": len(rows), "cache_hits": index["cache"]["hits"],
            "cache_misses": index["cache"]["misses"]}


def _cache_counts(cache) -> dict:
    if cache is None:
        return {"enabled": False, "hits": 0, "misses": 0}
    return {"enabled": True, "hits": cache.hits, "misses": cache.misses, **cache.describe()}


def _align_photos(photos: list, ir_dir: Path, settings: AlignSettings, cache) -> tuple[list, list, list]:
    """Return the index rows, the crops of aligned photos and their embeddings (NaN: not cached)."""
    from kubeface.facecache import NO_FACE, CachedFace
    from kubeface.imageio import read_image_oriented

    detector = None
    rows, crops, embeddings = [], [], []
    missing = np.full(EMBEDDING_SIZE, np.nan, np.float32)
    progress = StageProgress("align", len(photos))
    for photo in photos:
        row = {"path": photo.path, "person": photo.person, "split": photo.split, "sha256": photo.sha256}
        cached = cache.get(photo.sha256) if cache is not None else None
        if cached is not None:
            row.update(cached.row_fields(), cached=True)
            row["several_faces"] = row.get("faces", 0) > 1
            if cached.status == "aligned":
                crops.append(cached.crop)
                embeddings.append(cached.embedding)
            rows.append(row)
            progress()
            continue
        try:
            image, orientation = read_image_oriented(photo.source)
        except KubefaceError as error:
            row.update(status="unreadable", reason=str(error))
        else:
            if orientation != 1:
                row["exif_orientation"] = orientation
            if detector is None:
                from kubeface.detect import Detector

                detector = Detector(ir_dir)
            faces = detector.detect(image)
            face = choose_face(faces, image.shape)
            row["faces"] = len(faces)
            row["several_faces"] = len(faces) > 1
            if face is None:
                row.update(status="no_face", reason="no face detected")
                if cache is not None:
                    cache.put(photo.sha256, CachedFace(status=NO_FACE, faces=0))
            else:
                crops.append(crop_face(image, face, settings))
                embeddings.append(missing)
                row.update(status="aligned", box=[round(float(v), 2) for v in face.box], score=face.score)
        rows.append(row)
        progress()
    return rows, crops, embeddings


def run_embed(aligned_dir: Path, ir_dir: Path, output_dir: Path, s3_endpoint: str = "") -> dict:
    """Embed the aligned crops of one shard; writes embeddings.npz and a copy of index.json.

    Crops whose embedding came from the face cache are not embedded again; the new ones are
    written to the cache that align used.
    """
    aligned_dir, output_dir = Path(aligned_dir), Path(output_dir)
    index = read_json(aligned_dir / INDEX_FILE)
    dataset_checks.check_people_before_embedding(index)
    with np.load(aligned_dir / CROPS_FILE, allow_pickle=False) as data:
        crops = data["crops"]
        embeddings = data["embeddings"] if "embeddings" in data else np.full((len(crops), EMBEDDING_SIZE), np.nan)
    embeddings = np.asarray(embeddings, np.float32)
    todo = np.flatnonzero(np.isnan(embeddings).any(axis=1))
    settings = EmbedSettings()
    if len(todo):
        from kubeface.embed import Embedder

        progress = StageProgress("embed", len(todo))
        embeddings[todo] = Embedder(Path(ir_dir), settings=settings).embed(crops[todo], progress=progress)
    cache_info = index.get("cache") or {"enabled": False}
    if cache_info["enabled"] and len(todo):
        _cache_embeddings(cache_info, s3_endpoint, index["rows"], crops, embeddings, todo)
    index["embed"] = {"computed": int(len(todo)), "cached": int(len(crops) - len(todo))}
    # The published model records these, so the recognizer embeds the same way.
    index["embed_settings"] = settings.to_json()
    output_dir.mkdir(parents=True, exist_ok=True)
    np.savez(output_dir / EMBEDDINGS_FILE, embeddings=embeddings)
    write_json(output_dir / INDEX_FILE, index)
    logger.info("embedded %d crops, %d taken from the cache", len(todo), len(crops) - len(todo))
    return {"embedded": int(len(todo)), "cache_hits": int(len(crops) - len(todo))}


def _cache_embeddings(cache_info: dict, s3_endpoint: str, rows: list[dict], crops: np.ndarray,
                      embeddings: np.ndarray, todo: np.ndarray) -> None:
    """Write the crops and embeddings computed in this run to the face cache."""
    from kubeface.facecache import ALIGNED, CachedFace, FaceCache

    cache = FaceCache.reopen(cache_info, s3_endpoint)
    aligned = [r for r in rows if r["status"] == "aligned"]
    for k in todo:
        row = aligned[k]
        cache.put(row["sha256"], CachedFace(status=ALIGNED, faces=row["faces"], box=row["box"], score=row["score"],
                                            crop=crops[k], embedding=embeddings[k]))


def collect_embeddings(shard_dirs: list[Path]) -> tuple[list[dict], np.ndarray, dict]:
    """Merge shards into one list of aligned rows and their embeddings, in a stable order."""
    rows, vectors = [], []
    meta = {"skipped": [], "other_rows": [], "cache": {"enabled": False, "hits": 0, "misses": 0, "embedded": 0}}
    for folder in shard_dirs:
        folder = Path(folder)
        index = read_json(folder / INDEX_FILE)
        with np.load(folder / EMBEDDINGS_FILE, allow_pickle=False) as data:
            embeddings = data["embeddings"]
        aligned = [r for r in index["rows"] if r["status"] == "aligned"]
        if len(aligned) != len(embeddings):
            raise KubefaceError(f"{folder}: {len(aligned)} aligned rows but {len(embeddings)} embeddings")
        rows += aligned
        vectors.append(embeddings)
        meta["skipped"] += index["skipped"]
        meta["other_rows"] += [r for r in index["rows"] if r["status"] != "aligned"]
        for key in ("align", "dataset", "test_dataset", "unknown_dataset", "facenet"):
            meta.setdefault(key, index.get(key))
        meta.setdefault("embed", index.get("embed_settings"))
        _add_cache_counts(meta["cache"], index)
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["split"], rows[i]["path"]))
    stacked = np.concatenate(vectors) if vectors else np.zeros((0, 512), np.float32)
    return [rows[i] for i in order], stacked[order], meta


def _add_cache_counts(total: dict, index: dict) -> None:
    """Add one shard's face-cache hits, misses and embeddings computed to the run's totals."""
    counts = index.get("cache") or {}
    total["enabled"] = total["enabled"] or bool(counts.get("enabled"))
    total["hits"] += int(counts.get("hits", 0))
    total["misses"] += int(counts.get("misses", 0))
    total["embedded"] += int((index.get("embed") or {}).get("computed", 0))


def unknown_folder(fetched: Path) -> str:
    """Return the unknown-people folder of a fetch output as a string, or "" when there is none."""
    folder = Path(fetched) / datasets.UNKNOWN
    return str(folder) if folder.is_dir() else ""


def test_folder(fetched: Path) -> str:
    """Return the test folder of a fetch output as a string, or "" when there is none."""
    folder = Path(fetched) / "test"
    return str(folder) if folder.is_dir() else ""


def _copy_dataset(root: Path, target: Path, split: str) -> list[dict]:
    """Copy a dataset folder's regular files and folders; returns the entries left behind.

    Named pipes, sockets and devices cannot be copied (reading a pipe would block), so they
    are reported as skipped instead of failing the copy.
    """
    import shutil
    import stat

    left = []

    def ignore(folder: str, names: list[str]) -> list[str]:
        ignored = []
        for name in names:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if folder == str(root) and name == "manifest.json":
                ignored.append(name)
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                ignored.append(name)
                relative = path.relative_to(root).as_posix()
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "a pipe, socket or device"
                left.append({"path": f"{split}:{relative}", "reason": f"not a regular file ({kind})"})
        return ignored

    shutil.copytree(root, target, dirs_exist_ok=True, ignore=ignore, symlinks=False)
    return left


def run_fetch(dataset_uri: str, output_dir: Path, test_dataset_uri: str = "", s3_endpoint: str = "",
              unknown_dataset_uri: str = "") -> dict:
    """Copy the dataset (and test set) into output_dir/train and output_dir/test, checked.

    An unknown-people folder, photos of people absent from training, goes to output_dir/unknown.

    Fails before any detection or embedding when fewer than two people have photos.
    """
    output_dir = Path(output_dir)
    plan = {"dataset": None, "test_dataset": None, "unknown_dataset": None}
    not_copied: list[dict] = []
    sources = (("dataset", dataset_uri, "train"), ("test_dataset", test_dataset_uri, "test"),
               ("unknown_dataset", unknown_dataset_uri, datasets.UNKNOWN))
    for key, uri, split in sources:
        if not uri:
            continue
        root, identity = resolve_dataset(uri, s3_endpoint)
        not_copied += _copy_dataset(root, output_dir / split, split)
        plan[key] = identity
    photos, skipped = datasets.scan_dataset(output_dir / "train",
                                            output_dir / "test" if test_dataset_uri else None,
                                            output_dir / datasets.UNKNOWN if unknown_dataset_uri else None)
    people = sorted({p.person for p in photos if p.split == datasets.TRAIN})
    if len(people) < 2:
        raise DatasetError(
            f"training needs photos of at least 2 people; found {len(people)} in {dataset_uri} "
            f"({', '.join(people) or 'none'}); add person folders <root>/<person>/<photo>"
        )
    if unknown_dataset_uri and not any(p.split == datasets.UNKNOWN for p in photos):
        raise DatasetError(
            f"the unknown-people dataset {unknown_dataset_uri} has no photos; add photos of people "
            "absent from training, or leave it out to choose the thresholds from left-out training people"
        )
    plan.update(people=people, photos=len(photos), skipped=[s.to_json() for s in skipped], not_copied=not_copied)
    write_json(output_dir / "plan.json", plan)
    return plan


def unknown_rows(rows: list[dict], people: list[str]) -> tuple[list[int], list[dict]]:
    """Return the indices of the unknown-people photos, and those excluded for naming a known person."""
    known = set(people)
    unknown, excluded = [], []
    for i, row in enumerate(rows):
        if row["split"] != datasets.UNKNOWN:
            continue
        if row["person"] in known:
            excluded.append({"path": f"{datasets.UNKNOWN}:{row['path']}",
                             "reason": f"person {row['person']!r} is in the training set, so not unknown"})
        else:
            unknown.append(i)
    return unknown, excluded


def split_rows(rows: list[dict], test_fraction: float, seed: int) -> tuple[list[int], list[int], list[dict], list[dict]]:
    """Split aligned rows into training and test indices.

    With a test folder, its rows are the test set. Otherwise each person's photos are split
    with a seeded shuffle, at least one test photo per person with two or more photos; a
    person with one photo is used for training only. Returns (train, test, excluded, notes):
    excluded lists test photos that cannot be scored, notes the people trained on one photo
    (with or without a test folder).
    """
    notes, excluded = [], []
    explicit_test = any(r["split"] == datasets.TEST for r in rows)
    if explicit_test:
        train = [i for i, r in enumerate(rows) if r["split"] == datasets.TRAIN]
        known = {rows[i]["person"] for i in train}
        per_person = collections.Counter(rows[i]["person"] for i in train)
        notes += [{"path": f"train:{rows[i]['path']}",
                   "reason": f"{rows[i]['person']!r} has one usable photo: used for training only"}
                  for i in train if per_person[rows[i]["person"]] == 1]
        test = []
        for i, r in enumerate(rows):
            if r["split"] == datasets.TEST:
                if r["person"] in known:
                    test.append(i)
                else:
                    excluded.append({"path": f"test:{r['path']}",
                                     "reason": f"person {r['person']!r} has no training photo"})
        return train, test, excluded, notes
    rng = np.random.default_rng(seed)
    by_person: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r["split"] == datasets.TRAIN:
            by_person.setdefault(r["person"], []).append(i)
    train, test = [], []
    for person in sorted(by_person):
        indices = by_person[person]
        if len(indices) == 1:
            train += indices
            notes.append({"path": f"train:{rows[indices[0]]['path']}",
                          "reason": f"{person!r} has one usable photo: used for training only"})
            continue
        shuffled = [indices[j] for j in rng.permutation(len(indices))]
        n_test = min(len(indices) - 1, max(1, int(round(len(indices) * test_fraction))))
        test += sorted(shuffled[:n_test])
        train += sorted(shuffled[n_test:])
    return sorted(train), sorted(test), excluded, notes


def run_train(shard_dirs: list[Path], output_dir: Path, test_fraction: float = DEFAULT_TEST_FRACTION,
              seed: int = 0, svm_c: float = 1.0) -> dict:
    """Fit the linear SVM on the training embeddings; save it with the split and the gallery."""
    from kubeface.classifier import train_svm

    rows, embeddings, meta = collect_embeddings(shard_dirs)
    all_rows = rows + meta["other_rows"]
    keep, duplicates = dataset_checks.find_duplicates(rows)
    rows, embeddings = [rows[i] for i in keep], embeddings[keep]
    train, test, excluded, notes = split_rows(rows, test_fraction, seed)
    people = sorted({rows[i]["person"] for i in train})
    dataset_checks.require_people(people, all_rows)
    dropped_people = dataset_checks.dropped_people(all_rows, people)
    unknown, unknown_excluded = unknown_rows(rows, people)
    labels = [rows[i]["person"] for i in train]
    model = train_svm(embeddings[train], labels, c=svm_c, seed=seed)
    output_dir = Path(output_dir)
    model.save(output_dir / "classifier")
    label_index = {name: k for k, name in enumerate(model.classes)}
    # The unknown people's embeddings travel with the gallery, so that enrolling a person later
    # can choose new rejection thresholds from the same people.
    np.savez(output_dir / "classifier" / GALLERY_FILE, embeddings=embeddings[train],
             labels=np.asarray([label_index[p] for p in labels], np.int32),
             unknown=embeddings[unknown].reshape(-1, EMBEDDING_SIZE),
             unknown_people=np.asarray([rows[i]["person"] for i in unknown], dtype=np.str_))
    np.savez(output_dir / EMBEDDINGS_FILE, embeddings=embeddings)
    dropped = meta["other_rows"]
    split = {
        "seed": seed, "test_fraction": test_fraction, "rows": rows, "train": train, "test": test,
        "notes": notes, "excluded": excluded + unknown_excluded, "duplicates": duplicates,
        "skipped": meta["skipped"], "unknown": unknown, "svm_c": svm_c, "cache": meta["cache"],
        "unusable": [{"path": f"{r['split']}:{r['path']}", "reason": r.get("reason", r["status"])} for r in dropped],
        "dropped_people": dropped_people, "several_faces": dataset_checks.several_faces(rows),
        "align": meta["align"], "embed": meta.get("embed"), "dataset": meta["dataset"],
        "test_dataset": meta["test_dataset"], "unknown_dataset": meta["unknown_dataset"], "facenet": meta["facenet"],
    }
    write_json(output_dir / SPLIT_FILE, split)
    logger.info("trained on %d photos of %d people; %d held out; %d photos of unknown people", len(train),
                len(people), len(test), len(unknown))
    return {"people": people, "n_train": len(train), "n_test": len(test), "n_unknown": len(unknown)}


def library_versions() -> dict:
    """Return the versions of the libraries that shape a model's results."""
    import cv2
    import openvino
    import sklearn

    return {"kubeface": __version__, "openvino": openvino.__version__, "scikit-learn": sklearn.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__, "python": platform.python_version()}
