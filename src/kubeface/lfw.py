"""The Labeled Faces in the Wild (LFW) face verification benchmark, run on kubeface's own pipeline.

LFW's pairs files list same-person pairs ("name n1 n2") and different-person pairs
("name1 n1 name2 n2") of the photos <name>/<name>_<nnnn>.jpg. The first line of View 2's
pairs.txt, "10 300", gives 10 sets (the folds) of 300 same and 300 different pairs. View 1's
pairsDevTrain.txt and pairsDevTest.txt are one set each, so their first line is a single count.
Every photo is detected, aligned and embedded from the original file, then scored with:

- View 2 (or any file with several sets): the k-fold protocol, each set a fold whose threshold
  is chosen on the other folds;
- View 1: the threshold chosen on pairsDevTrain.txt and scored on pairsDevTest.txt;
- a single set alone is cut into k folds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from kubeface import runtime, stages, verification
from kubeface.align import AlignSettings
from kubeface.embed import EmbedSettings
from kubeface.errors import InvalidInputError
from kubeface.photo_embeddings import PhotoEmbedder, PhotoEmbeddings

logger = logging.getLogger(__name__)

DISTANCES = ("euclidean", "cosine")
DEFAULT_FOLDS = 10


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two photos, as paths relative to the LFW folder, and whether they show the same person."""

    first: str
    second: str
    same: bool
    fold: int


@dataclasses.dataclass(frozen=True)
class PairList:
    """The pairs of one pairs file, each with its fold number (0 when the file is one set)."""

    path: Path
    pairs: list[Pair]
    sets: int


def photo_name(person: str, number: int) -> str:
    """Return the LFW path of a person's photo, for example "Ann_Doe/Ann_Doe_0003.jpg"."""
    return f"{person}/{person}_{number:04d}.jpg"


def _photo_number(text: str, path: Path, line_number: int) -> int:
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(f"{path} line {line_number}: photo number must be a positive integer; got {text!r}")
    return int(text)


def _parse_header(fields: list[str], path: Path) -> tuple[int, int]:
    if len(fields) in (1, 2) and all(f.isdigit() and int(f) > 0 for f in fields):
        numbers = [int(f) for f in fields]
        return (1, numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])
    raise InvalidInputError(
        f"{path} line 1: expected the pair counts 'SETS PAIRS' or 'PAIRS' (positive integers); got "
        f"{' '.join(fields)!r}; pass an LFW pairs file such as pairs.txt or pairsDevTest.txt"
    )


def read_pairs(path: Path) -> PairList:
    """Read an LFW pairs file; each set lists its same-person pairs, then its different-person pairs."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InvalidInputError(f"cannot read pairs file {path}: {error}") from error
    rows = [(i + 1, line.split()) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise InvalidInputError(f"pairs file {path} is empty; pass an LFW pairs file such as pairs.txt")
    sets, per_class = _parse_header(rows[0][1], path)

    body = rows[1:]
    expected = sets * 2 * per_class
    if len(body) != expected:
        raise InvalidInputError(
            f"{path}: the header announces {sets} sets of {per_class} same and {per_class} different pairs "
            f"({expected} lines), but {len(body)} pair lines follow"
        )

    pairs = []
    for index, (line_number, fields) in enumerate(body):
        fold, position = divmod(index, 2 * per_class)
        same = position < per_class
        if same and len(fields) == 3:
            person = fields[0]
            first = photo_name(person, _photo_number(fields[1], path, line_number))
            second = photo_name(person, _photo_number(fields[2], path, line_number))
        elif not same and len(fields) == 4:
            first = photo_name(fields[0], _photo_number(fields[1], path, line_number))
            second = photo_name(fields[2], _photo_number(fields[3], path, line_number))
        else:
            form = "NAME N1 N2 (same person)" if same else "NAME1 N1 NAME2 N2 (different people)"
            raise InvalidInputError(
                f"{path} line {line_number}: expected {form} at this position of set {fold + 1}; got {' '.join(fields)!r}"
            )
        pairs.append(Pair(first=first, second=second, same=same, fold=fold))
    return PairList(path=path, pairs=pairs, sets=sets)


def assign_folds(pairs: list[Pair], folds: int) -> list[Pair]:
    """Cut a single set into folds: the k-th part of its same pairs plus the k-th of its different pairs."""
    if folds < 2:
        raise InvalidInputError(f"folds must be at least 2; got {folds}")
    result = []
    for same in (True, False):
        group = [p for p in pairs if p.same == same]
        if len(group) < folds:
            kind = "same-person" if same else "different-person"
            raise InvalidInputError(f"cannot cut {len(group)} {kind} pairs into {folds} folds; use fewer folds")
        result += [dataclasses.replace(p, fold=i * folds // len(group)) for i, p in enumerate(group)]
    return result


def drop_missing(pairs: list[Pair], lfw_dir: Path) -> tuple[list[Pair], list[str]]:
    """Drop the pairs that name a photo absent from lfw_dir; returns the kept pairs and the absent photos."""
    names = sorted({p.first for p in pairs} | {p.second for p in pairs})
    absent = {name for name in names if not (lfw_dir / name).is_file()}
    kept = [p for p in pairs if p.first not in absent and p.second not in absent]
    return kept, sorted(absent)


def pair_distances(first: np.ndarray, second: np.ndarray, distance: str) -> np.ndarray:
    """Return the distance of each row pair: Euclidean, or cosine distance 1 - cos(angle)."""
    if distance == "euclidean":
        return np.linalg.norm(first - second, axis=1)
    if distance == "cosine":
        norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
        return 1.0 - np.sum(first * second, axis=1) / np.maximum(norms, 1e-12)
    raise InvalidInputError(f"distance must be one of {DISTANCES}; got {distance!r}")


@dataclasses.dataclass(frozen=True)
class BenchmarkSettings:
    """Every setting that changes the benchmark's result."""

    align: AlignSettings = AlignSettings()
    embed: EmbedSettings = EmbedSettings()
    distance: str = "cosine"
    """"cosine" or "euclidean". On L2-normalised embeddings both rank pairs alike, so they
    differ only with subtract_mean."""
    subtract_mean: bool = True
    """Subtract the mean embedding of the training pairs' photos before measuring distances.
    This changes cosine distances only, since a shared shift leaves Euclidean distances alone.
    The defaults, cosine distance after subtracting the mean, scored highest on View 1."""
    far_target: float = verification.DEFAULT_FAR_TARGET
    folds: int = DEFAULT_FOLDS
    """Folds to cut a single set of pairs into when no training pairs are given."""

    def __post_init__(self):
        if self.distance not in DISTANCES:
            raise InvalidInputError(f"distance must be one of {DISTANCES}; got {self.distance!r}")

    def to_json(self) -> dict:
        return {"align": self.align.to_json(), "embed": self.embed.to_json(), "distance": self.distance,
                "subtract_mean": self.subtract_mean, "far_target": self.far_target, "folds": self.folds}


def _embeddings_of(pairs: list[Pair], index: dict[str, int], embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = embeddings[[index[p.first] for p in pairs]]
    second = embeddings[[index[p.second] for p in pairs]]
    return first, second


def _distances(first, second, settings: BenchmarkSettings, mean: np.ndarray | None) -> np.ndarray:
    if mean is not None:
        first, second = first - mean, second - mean
    return pair_distances(first, second, settings.distance)


def _training_mean(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.concatenate([first, second]).mean(axis=0)


def evaluate_kfold(pairs: list[Pair], index: dict[str, int], embeddings: np.ndarray,
                   settings: BenchmarkSettings) -> verification.VerificationResult:
    """Run the k-fold protocol over the fold numbers of the pairs."""
    first, second = _embeddings_of(pairs, index, embeddings)
    folds = np.array([p.fold for p in pairs])
    same = np.array([p.same for p in pairs])
    if settings.subtract_mean:
        rows = []
        for fold in np.unique(folds):
            train = folds != fold
            mean = _training_mean(first[train], second[train])
            rows.append(_distances(first, second, settings, mean))
        distances = np.stack(rows)
    else:
        distances = _distances(first, second, settings, None)
    return verification.kfold(distances, same, folds, settings.far_target)


def evaluate_train_test(train_pairs: list[Pair], test_pairs: list[Pair], index: dict[str, int],
                        embeddings: np.ndarray, settings: BenchmarkSettings) -> verification.VerificationResult:
    """Choose the thresholds on train_pairs and score them on test_pairs."""
    train_first, train_second = _embeddings_of(train_pairs, index, embeddings)
    test_first, test_second = _embeddings_of(test_pairs, index, embeddings)
    mean = _training_mean(train_first, train_second) if settings.subtract_mean else None
    return verification.train_test(
        _distances(train_first, train_second, settings, mean), np.array([p.same for p in train_pairs]),
        _distances(test_first, test_second, settings, mean), np.array([p.same for p in test_pairs]),
        settings.far_target,
    )


@dataclasses.dataclass
class PairPlan:
    """The pairs to score, and the photos to embed for them."""

    test: list[Pair]
    train: list[Pair] | None
    photos: list[str]
    absent: list[str]
    dropped_pairs: int


def plan_pairs(lfw_dir: Path, pairs_path: Path, train_pairs_path: Path | None, folds: int) -> PairPlan:
    """Read the pairs files, choose the protocol's folds and list the photos to embed once each."""
    lfw_dir = Path(lfw_dir)
    if not lfw_dir.is_dir():
        raise InvalidInputError(f"LFW folder {lfw_dir} does not exist; pass --lfw-dir with <Person>/<Person>_NNNN.jpg")
    test_list = read_pairs(pairs_path)
    train = read_pairs(train_pairs_path).pairs if train_pairs_path is not None else None
    total = len(test_list.pairs) + (len(train) if train else 0)
    test, absent = drop_missing(test_list.pairs, lfw_dir)
    if train is not None:
        train, absent_train = drop_missing(train, lfw_dir)
        absent = sorted(set(absent) | set(absent_train))
    kept = len(test) + (len(train) if train else 0)
    if not test or (train is not None and not train):
        raise InvalidInputError(
            f"none of the photos of {pairs_path} were found under {lfw_dir} (for example {absent[0]}); "
            "pass --lfw-dir the folder that contains <Person>/<Person>_NNNN.jpg"
        )
    if absent:
        logger.warning("%d pairs name %d photos absent from %s and are left out: %s",
                       total - kept, len(absent), lfw_dir, ", ".join(absent[:5]))
    if train is None and test_list.sets == 1:
        test = assign_folds(test, folds)
    photos = sorted({p.first for p in test} | {p.second for p in test} |
                    ({p.first for p in train} | {p.second for p in train} if train else set()))
    return PairPlan(test=test, train=train, photos=photos, absent=absent, dropped_pairs=total - kept)


def evaluate(plan: PairPlan, names: list[str], embeddings: np.ndarray,
             settings: BenchmarkSettings) -> verification.VerificationResult:
    """Score the plan's pairs from the photos' embeddings with the protocol the plan calls for."""
    index = {name: i for i, name in enumerate(names)}
    if plan.train is not None:
        return evaluate_train_test(plan.train, plan.test, index, embeddings, settings)
    return evaluate_kfold(plan.test, index, embeddings, settings)


def run_benchmark(lfw_dir: Path, pairs_path: Path, train_pairs_path: Path | None, settings: BenchmarkSettings,
                  output_dir: Path, ir_dir: Path, batch_size: int = 32, use_cache: bool = True,
                  cache_dir: Path | None = None, progress_factory=None) -> dict:
    """Embed every photo the pairs need, score the protocol, and write roc.png and report.json.

    progress_factory(total), when given, returns a callable that receives the number of photos
    finished after each chunk. Returns the summary that `kubeface benchmark lfw --json` prints.
    """
    start = time.perf_counter()
    load_before = os.getloadavg()
    output_dir = Path(output_dir)
    try:
        # Made first, so a bad path fails before minutes of embedding, not after.
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInputError(f"cannot use {output_dir} as the output folder: {error}; "
                                "pass --output-dir a folder path") from error
    plan = plan_pairs(lfw_dir, pairs_path, train_pairs_path, settings.folds)
    embedder = PhotoEmbedder(ir_dir, settings.align, settings.embed, batch_size=batch_size,
                             cache_dir=cache_dir, use_cache=use_cache)
    progress = progress_factory(len(plan.photos)) if progress_factory else None
    photos = embedder.embed_files(Path(lfw_dir), plan.photos, progress=progress)
    result = evaluate(plan, photos.names, photos.embeddings, settings)

    roc_path = verification.plot_roc(result, output_dir / "roc.png", f"LFW {Path(pairs_path).name}")
    summary = {
        "benchmark": "lfw",
        "pairs_file": str(pairs_path),
        "train_pairs_file": str(train_pairs_path) if train_pairs_path else None,
        **_scores(result),
        **_photo_counts(plan, photos),
        "settings": settings.to_json(),
        "photos_detected": photos.detected,
        "crops_embedded": photos.embedded,
        "embed_seconds": round(photos.seconds, 2),
        "embed_cpu_seconds": round(photos.cpu_seconds, 2),
        "inference_threads": runtime.inference_threads(),
        "load_average": {"start": [round(v, 2) for v in load_before],
                         "end": [round(v, 2) for v in os.getloadavg()]},
        "seconds": round(time.perf_counter() - start, 2),
        "roc_png": str(roc_path),
        "report": str(output_dir / "report.json"),
    }
    report = {**summary, "folds": [dataclasses.asdict(f) for f in result.folds]}
    stages.write_json(output_dir / "report.json", report)
    return summary


def _scores(result: verification.VerificationResult) -> dict:
    return {
        "protocol": result.protocol,
        "pairs": result.pairs,
        "accuracy": result.accuracy,
        "accuracy_std": result.accuracy_std,
        "val_at_far": result.val,
        "val_std": result.val_std,
        "far": result.far,
        "far_target": result.far_target,
        "auc": result.auc,
        "eer": result.eer,
        "eer_max_distance": result.eer_max_distance,
        # Mean over folds of the threshold that maximised training accuracy.
        "max_distance": float(np.mean([f.max_distance for f in result.folds])),
    }


def _photo_counts(plan: PairPlan, photos: PhotoEmbeddings) -> dict:
    return {
        "photos": len(photos.names),
        "no_face": len(photos.no_face),
        "no_face_photos": photos.no_face,
        "several_faces": len(photos.several_faces),
        "absent_photos": plan.absent,
        "dropped_pairs": plan.dropped_pairs,
    }
