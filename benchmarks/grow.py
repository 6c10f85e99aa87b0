"""Measure retraining with the embedding cache, and unknown-face rejection on LFW people.

Usage: python benchmarks/grow.py --data DIR [--json]

DIR contains demo_lfw/ and lfw_deepfunneled/. Every run happens in a temporary store, in this
process, through the same stage functions as the pipeline (no KFP runner).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from kubeface import convert, stages
from kubeface.publish import run_publish, summary
from kubeface.validation import run_validate


def train(
    ir_dir: Path,
    dataset: Path,
    test: Path | None,
    unknown: Path | None,
    work: Path,
    store: str,
    use_cache: bool = True,
) -> tuple[dict, float]:
    """Run fetch, align, embed, train, validate and publish; returns the summary and the seconds taken."""
    start = time.perf_counter()
    fetched = work / "fetch"
    stages.run_fetch(str(dataset), fetched, str(test or ""), unknown_dataset_uri=str(unknown or ""))
    stages.run_align(
        str(fetched / "train"),
        ir_dir,
        work / "align",
        test_dataset_uri=stages.test_folder(fetched),
        unknown_dataset_uri=stages.unknown_folder(fetched),
        use_cache=use_cache,
        store_uri=store,
    )
    stages.run_embed(work / "align", ir_dir, work / "embed")
    stages.run_train([work / "embed"], work / "train")
    report = run_validate(work / "train", work / "validate", 0.5, store_uri=store, model_name="bench")
    uri = run_publish(store, "bench", ir_dir, work / "train", work / "validate") if report["passed"] else ""
    return summary(work / "train", work / "validate", uri), time.perf_counter() - start


def retrain_figures(ir_dir: Path, demo: Path, scratch: Path) -> dict:
    """Time version 1, then version 2 with one more person, with and without the cache."""
    store = str(scratch / "store")
    first, first_s = train(ir_dir, demo / "dataset", demo / "test", demo / "unknown", scratch / "v1", store)
    grown = scratch / "grown"
    for split in ("dataset", "test"):
        shutil.copytree(demo / split, grown / split)
        shutil.copytree(demo / "new_person" / split / "Vladimir_Putin", grown / split / "Vladimir_Putin")
    second, second_s = train(
        ir_dir, grown / "dataset", grown / "test", demo / "unknown", scratch / "v2", store
    )
    cold, cold_s = train(
        ir_dir,
        grown / "dataset",
        grown / "test",
        demo / "unknown",
        scratch / "v2-cold",
        str(scratch / "cold-store"),
        use_cache=False,
    )
    return {
        "first_seconds": round(first_s, 1),
        "first_cache": first["cache"],
        "second_seconds": round(second_s, 1),
        "second_cache": second["cache"],
        "second_without_cache_seconds": round(cold_s, 1),
        "second_time_ratio": round(second_s / cold_s, 3),
    }


def lfw_split(lfw: Path, folder: Path, known: int, unknown: int) -> tuple[Path, Path, Path, Path]:
    """Lay out known people (15 training and 5 test photos each) and unknown single photos.

    Known people are the first people, by name, with at least 20 photos. Unknown people are the
    first people, by name, with exactly one photo. The first half of them forms the unknown-people
    folder that helps choose thresholds, and the second half is only ever measured.
    """
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    rich = [p for p in people if len(list(p.glob("*.jpg"))) >= 20][:known]
    singles = [p for p in people if len(list(p.glob("*.jpg"))) == 1][:unknown]
    dataset, test, calibrate, measure = (folder / name for name in ("dataset", "test", "unknown", "held_out"))
    for person in rich:
        photos = sorted(person.glob("*.jpg"))[:20]
        for target, chosen in ((dataset, photos[:15]), (test, photos[15:])):
            (target / person.name).mkdir(parents=True)
            for photo in chosen:
                shutil.copy(photo, target / person.name / photo.name)
    for k, person in enumerate(singles):
        target = calibrate if k < unknown // 2 else measure
        target.mkdir(parents=True, exist_ok=True)
        photo = next(person.glob("*.jpg"))
        shutil.copy(photo, target / photo.name)
    return dataset, test, calibrate, measure


def held_out_rates(model_uri: str, test: Path, measure: Path) -> dict:
    """Recognize the test photos and the held-out unknown photos with the published model."""
    from kubeface.imageio import read_image
    from kubeface.recognizer import Recognizer

    recognizer = Recognizer.from_uri(model_uri)

    def main_face(photo: Path):
        faces = recognizer.recognize(read_image(photo)).faces
        return max(faces, key=lambda f: f.width * f.height) if faces else None

    known = sorted(test.glob("*/*.jpg"))
    named = sum(
        1 for photo in known if (face := main_face(photo)) is not None and face.label == photo.parent.name
    )
    strangers = sorted(measure.glob("*.jpg"))
    accepted = sum(
        1 for photo in strangers if (face := main_face(photo)) is not None and face.label is not None
    )
    return {
        "known_named": named,
        "known": len(known),
        "true_accept_rate": round(named / len(known), 4),
        "unknown_accepted": accepted,
        "unknown": len(strangers),
        "false_accept_rate": round(accepted / len(strangers), 4),
    }


def rejection_figures(ir_dir: Path, lfw: Path, scratch: Path, known: int, unknown: int) -> dict:
    """Train on LFW people with and without an unknown-people folder; measure on unseen strangers."""
    dataset, test, calibrate, measure = lfw_split(lfw, scratch / "lfw", known, unknown)
    store = str(scratch / "lfw-store")
    out = {
        "known_people": known,
        "unknown_people_folder": len(list(calibrate.glob("*.jpg"))),
        "unknown_people_measured": len(list(measure.glob("*.jpg"))),
    }
    for label, folder in (("left_out_only", None), ("with_unknown_folder", calibrate)):
        result, seconds = train(ir_dir, dataset, test, folder, scratch / f"lfw-{label}", store)
        out[label] = {
            "thresholds": {k: result["rejection"][k] for k in ("max_distance", "min_probability")},
            "reported_false_accept_rate": result["rejection"]["false_accept_rate"],
            "reported_true_accept_rate": result["rejection"]["true_accept_rate"],
            "held_out": held_out_rates(result["model_uri"], test, measure),
            "seconds": round(seconds, 1),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with demo_lfw/ and lfw_deepfunneled/")
    parser.add_argument("--known", type=int, default=20, help="LFW people to train on (default: 20)")
    parser.add_argument("--unknown", type=int, default=200, help="LFW single-photo people (default: 200)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    ir_dir = convert.ensure_converted("FP32")
    data = Path(args.data)
    with tempfile.TemporaryDirectory(prefix="kubeface-bench-") as scratch:
        scratch = Path(scratch)
        figures = {
            "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
            "retrain": retrain_figures(ir_dir, data / "demo_lfw", scratch),
            "rejection": rejection_figures(
                ir_dir, data / "lfw_deepfunneled", scratch, args.known, args.unknown
            ),
        }
    print(json.dumps(figures, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
