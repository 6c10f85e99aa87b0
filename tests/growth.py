"""Helpers for the growth tests: datasets built from the demo photos, and in-process training runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from kubeface import stages
from kubeface.publish import run_publish, summary
from kubeface.validation import run_validate


def demo_with_new_person(demo_root: Path, folder: Path) -> tuple[Path, Path]:
    """Copy the demo dataset and test set with Vladimir_Putin added; returns (dataset, test)."""
    for split in ("dataset", "test"):
        shutil.copytree(demo_root / split, folder / split)
        shutil.copytree(
            demo_root / "new_person" / split / "Vladimir_Putin", folder / split / "Vladimir_Putin"
        )
    return folder / "dataset", folder / "test"


def train_version(
    ir_dir: Path,
    dataset: Path,
    test_dataset: Path | None,
    work: Path,
    store: str,
    name: str,
    unknown_dataset: Path | None = None,
    min_accuracy: float = 0.9,
    require_not_worse: bool = False,
    use_cache: bool = True,
) -> dict:
    """Run every stage in this process, with the face cache in the store; returns the run summary."""
    fetched = work / "fetch"
    stages.run_fetch(
        str(dataset), fetched, str(test_dataset or ""), unknown_dataset_uri=str(unknown_dataset or "")
    )
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
    report = run_validate(
        work / "train",
        work / "validate",
        min_accuracy,
        require_not_worse=require_not_worse,
        store_uri=store,
        model_name=name,
    )
    uri = run_publish(store, name, ir_dir, work / "train", work / "validate") if report["passed"] else ""
    return summary(work / "train", work / "validate", uri)
