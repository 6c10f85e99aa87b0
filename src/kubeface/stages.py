"""The work of each pipeline stage, as plain functions over folders and strings.

Every KFP component calls exactly one of these, so the same code runs in a cluster pod, in
the local runner and in tests.
"""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path

import numpy as np

from kubeface import __version__, convert, datasets
from kubeface.align import AlignSettings, choose_face, crop_face
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
    margin: int = 32,
    image_size: int = 160,
    s3_endpoint: str = "",
) -> dict:
    """Detect, choose and crop the face of every photo in one shard of the dataset.

    Writes crops.npz (N x S x S x 3 uint8, aligned photos only) and index.json: one row per
    input file with its status (aligned, no_face, unreadable) and, for several faces, the count.
    """
    from kubeface.detect import Detector
    from kubeface.imageio import read_image

    settings = AlignSettings(margin=margin, image_size=image_size)
    train_root, train_identity = resolve_dataset(dataset_uri, s3_endpoint)
    test_root, test_identity = (None, None)
    if test_dataset_uri:
        test_root, test_identity = resolve_dataset(test_dataset_uri, s3_endpoint)
    plan_path = train_root.parent / "plan.json"
    if plan_path.is_file():
        # A fetch output: the identity is the one of the original URI, not of the copy.
        plan = read_json(plan_path)
        train_identity, test_identity = plan["dataset"], plan["test_dataset"]
    photos, skipped = datasets.scan_dataset(train_root, test_root)
    mine = datasets.shard(photos, shard_index, shard_count)
    detector = Detector(Path(ir_dir))
    rows, crops = [], []
    progress = StageProgress("align", len(mine))
    for photo in mine:
        row = {"path": photo.path, "person": photo.person, "split": photo.split, "sha256": photo.sha256}
        try:
            image = read_image(photo.source)
        except KubefaceError as error:
            row.update(status="unreadable", reason=str(error))
        else:
            faces = detector.detect(image)
            face = choose_face(faces, image.shape)
            row["faces"] = len(faces)
            if face is None:
                row.update(status="no_face", reason="no face detected")
            else:
                crops.append(crop_face(image, face, settings))
                row.update(status="aligned", box=[round(float(v), 2) for v in face.box], score=face.score)
        rows.append(row)
        progress()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    size = settings.image_size
    np.savez(output_dir / CROPS_FILE, crops=np.asarray(crops, np.uint8).reshape(-1, size, size, 3))
    index = {
        "rows": rows,
        "skipped": [s.to_json() for s in skipped] if shard_index == 0 else [],
        "align": settings.to_json(),
        "dataset": train_identity,
        "test_dataset": test_identity,
        "shard": [shard_index, shard_count],
    }
    write_json(output_dir / INDEX_FILE, index)
    aligned = sum(1 for r in rows if r["status"] == "aligned")
    logger.info("shard %d/%d: %d of %d photos aligned", shard_index, shard_count, aligned, len(rows))
    return {"aligned": aligned, "photos": len(rows)}


def run_embed(aligned_dir: Path, ir_dir: Path, output_dir: Path) -> dict:
    """Embed the aligned crops of one shard; writes embeddings.npz and index.json with the embed settings."""
    from kubeface.embed import Embedder

    aligned_dir, output_dir = Path(aligned_dir), Path(output_dir)
    with np.load(aligned_dir / CROPS_FILE, allow_pickle=False) as data:
        crops = data["crops"]
    embedder = Embedder(Path(ir_dir))
    progress = StageProgress("embed", len(crops))
    embeddings = embedder.embed(crops, progress=progress)
    output_dir.mkdir(parents=True, exist_ok=True)
    np.savez(output_dir / EMBEDDINGS_FILE, embeddings=embeddings)
    write_json(output_dir / INDEX_FILE, {**read_json(aligned_dir / INDEX_FILE), "embed": embedder.settings.to_json()})
    return {"embedded": len(embeddings)}


def collect_embeddings(shard_dirs: list[Path]) -> tuple[list[dict], np.ndarray, dict]:
    """Merge shards into one list of aligned rows and their embeddings, in a stable order."""
    rows, vectors, meta = [], [], {"skipped": [], "other_rows": []}
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
        for key in ("align", "dataset", "test_dataset"):
            meta.setdefault(key, index[key])
        meta.setdefault("embed", index.get("embed"))
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["split"], rows[i]["path"]))
    stacked = np.concatenate(vectors) if vectors else np.zeros((0, 512), np.float32)
    return [rows[i] for i in order], stacked[order], meta


def test_folder(fetched: Path) -> str:
    """Return the test folder of a fetch output as a string, or "" when there is none."""
    folder = Path(fetched) / "test"
    return str(folder) if folder.is_dir() else ""


def run_fetch(dataset_uri: str, output_dir: Path, test_dataset_uri: str = "", s3_endpoint: str = "") -> dict:
    """Copy the dataset (and test set) into output_dir/train and output_dir/test, checked.

    Fails before any detection or embedding when fewer than two people have photos.
    """
    import shutil

    output_dir = Path(output_dir)
    plan = {"dataset": None, "test_dataset": None}
    for key, uri, split in (("dataset", dataset_uri, "train"), ("test_dataset", test_dataset_uri, "test")):
        if not uri:
            continue
        root, identity = resolve_dataset(uri, s3_endpoint)
        shutil.copytree(root, output_dir / split, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("manifest.json"))
        plan[key] = identity
    photos, skipped = datasets.scan_dataset(output_dir / "train",
                                            output_dir / "test" if test_dataset_uri else None)
    people = sorted({p.person for p in photos if p.split == datasets.TRAIN})
    if len(people) < 2:
        raise DatasetError(
            f"training needs photos of at least 2 people; found {len(people)} in {dataset_uri} "
            f"({', '.join(people) or 'none'}); add person folders <root>/<person>/<photo>"
        )
    plan.update(people=people, photos=len(photos), skipped=[s.to_json() for s in skipped])
    write_json(output_dir / "plan.json", plan)
    return plan


def _dedupe(rows: list[dict]) -> tuple[list[int], list[dict]]:
    """Return the indices of rows to keep and a report of the duplicates dropped.

    Training photos come first in rows, so a test photo identical to a training photo is
    dropped from the test set, never counted as a correct answer.
    """
    seen: dict[str, str] = {}
    keep, dropped = [], []
    for i, row in enumerate(rows):
        first = seen.get(row["sha256"])
        if first is None:
            seen[row["sha256"]] = f"{row['split']}:{row['path']}"
            keep.append(i)
        else:
            dropped.append({"path": f"{row['split']}:{row['path']}", "reason": f"duplicate of {first}"})
    return keep, dropped


def split_rows(rows: list[dict], test_fraction: float, seed: int) -> tuple[list[int], list[int], list[dict], list[dict]]:
    """Split aligned rows into training and test indices.

    With a test folder, its rows are the test set. Otherwise each person's photos are split
    with a seeded shuffle, at least one test photo per person with two or more photos; a
    person with one photo is used for training only. Returns (train, test, excluded, notes):
    excluded lists test photos that cannot be scored, notes the people trained on one photo.
    """
    notes, excluded = [], []
    explicit_test = any(r["split"] == datasets.TEST for r in rows)
    if explicit_test:
        train = [i for i, r in enumerate(rows) if r["split"] == datasets.TRAIN]
        known = {rows[i]["person"] for i in train}
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
    keep, duplicates = _dedupe(rows)
    rows, embeddings = [rows[i] for i in keep], embeddings[keep]
    train, test, excluded, notes = split_rows(rows, test_fraction, seed)
    people = sorted({rows[i]["person"] for i in train})
    if len(people) < 2:
        raise DatasetError(
            f"training needs at least 2 people with a usable photo; found {len(people)} "
            f"({', '.join(people) or 'none'}); check the skipped files in the report"
        )
    labels = [rows[i]["person"] for i in train]
    model = train_svm(embeddings[train], labels, c=svm_c, seed=seed)
    output_dir = Path(output_dir)
    model.save(output_dir / "classifier")
    label_index = {name: k for k, name in enumerate(model.classes)}
    np.savez(output_dir / "classifier" / GALLERY_FILE, embeddings=embeddings[train],
             labels=np.asarray([label_index[p] for p in labels], np.int32))
    np.savez(output_dir / EMBEDDINGS_FILE, embeddings=embeddings)
    dropped = meta["other_rows"]
    split = {
        "seed": seed, "test_fraction": test_fraction, "rows": rows, "train": train, "test": test,
        "notes": notes, "excluded": excluded, "duplicates": duplicates, "skipped": meta["skipped"],
        "unusable": [{"path": f"{r['split']}:{r['path']}", "reason": r.get("reason", r["status"])} for r in dropped],
        "align": meta["align"], "embed": meta.get("embed"), "dataset": meta["dataset"],
        "test_dataset": meta["test_dataset"],
    }
    write_json(output_dir / SPLIT_FILE, split)
    logger.info("trained on %d photos of %d people; %d held out", len(train), len(people), len(test))
    return {"people": people, "n_train": len(train), "n_test": len(test)}


def library_versions() -> dict:
    """Return the versions of the libraries that shape a model's results."""
    import cv2
    import openvino
    import sklearn

    return {"kubeface": __version__, "openvino": openvino.__version__, "scikit-learn": sklearn.__version__,
            "opencv": cv2.__version__, "numpy": np.__version__, "python": platform.python_version()}
