"""Checks on the aligned photos before and during training: enough people, duplicates, dropped people.

Rows are the align stage's index rows: path, person, split ("train" or "test"), sha256,
status ("aligned", "no_face", "unreadable"), reason, faces and several_faces.
"""

from __future__ import annotations

import collections
import logging

from kubeface.datasets import TRAIN, UNKNOWN
from kubeface.errors import DatasetError

logger = logging.getLogger(__name__)

MIN_PEOPLE = 2
ALIGNED = "aligned"
# How many failed photos an error message lists before it only counts them.
LISTED_FAILURES = 5


def report_path(row: dict) -> str:
    """Return the "split:path" name a row has in every report."""
    return f"{row['split']}:{row['path']}"


def require_people(people: list[str], rows: list[dict]) -> None:
    """Raise DatasetError unless at least MIN_PEOPLE people have a training photo with a face.

    The message gives the number found and needed, and the reasons of the training photos
    that could not be used.
    """
    if len(people) >= MIN_PEOPLE:
        return
    training = [r for r in rows if r["split"] == TRAIN]
    failed = [r for r in training if r["status"] != ALIGNED]
    counts = collections.Counter(r["status"] for r in training)
    listed = "; ".join(f"{report_path(r)}: {r.get('reason', r['status'])}" for r in failed[:LISTED_FAILURES])
    more = f"; and {len(failed) - LISTED_FAILURES} more" if len(failed) > LISTED_FAILURES else ""
    raise DatasetError(
        f"training needs photos of at least {MIN_PEOPLE} people with a detected face; found "
        f"{len(people)} ({', '.join(people) or 'none'}) in {len(training)} training photos "
        f"({', '.join(f'{n} {status}' for status, n in sorted(counts.items())) or 'none'})"
        + (f"; unusable: {listed}{more}" if failed else "")
        + "; add photos with one clear face per person folder"
    )


def check_people_before_embedding(index: dict) -> None:
    """Fail before any embedding when the align output of the only shard has too few people.

    With several shards no shard sees every person, so the train stage checks instead.
    """
    if list(index.get("shard", [0, 1])) != [0, 1]:
        # TODO: with several shards, check the merged align reports before embed starts.
        return
    rows = index["rows"]
    people = sorted({r["person"] for r in rows if r["split"] == TRAIN and r["status"] == ALIGNED})
    require_people(people, rows)


def find_duplicates(rows: list[dict]) -> tuple[list[int], list[dict]]:
    """Return the indices of rows to keep and a report of the copies dropped, by content hash.

    Among identical photos the first training copy (in row order) is kept, whatever the order
    of the splits. A test photo identical to a training photo is dropped, because it would
    score the model on its own training data. The same photo in the folders of two different
    people is dropped everywhere, because one of the labels is wrong.
    """
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row["sha256"], []).append(i)
    dropped_indices: dict[int, str] = {}
    for indices in groups.values():
        if len(indices) == 1:
            continue
        labelled = [i for i in indices if rows[i]["split"] != UNKNOWN]
        if labelled:
            # An unknown-people photo that also has a label elsewhere is not a stranger.
            for i in indices:
                if rows[i]["split"] == UNKNOWN:
                    dropped_indices[i] = f"duplicate of {report_path(rows[labelled[0]])}"
            indices = labelled
            if len(indices) == 1:
                continue
        people = sorted({rows[i]["person"] for i in indices})
        if len(people) > 1:
            copies = ", ".join(report_path(rows[i]) for i in indices)
            reason = (f"the same photo is labelled as {len(people)} people "
                      f"({', '.join(repr(p) for p in people)}): {copies}; keep it in one person folder")
            for i in indices:
                dropped_indices[i] = reason
            continue
        training = [i for i in indices if rows[i]["split"] == TRAIN]
        keeper = training[0] if training else indices[0]
        for i in indices:
            if i != keeper:
                dropped_indices[i] = f"duplicate of {report_path(rows[keeper])}"
    keep = [i for i in range(len(rows)) if i not in dropped_indices]
    dropped = [{"path": report_path(rows[i]), "reason": dropped_indices[i]} for i in sorted(dropped_indices)]
    return keep, dropped


def dropped_people(all_rows: list[dict], trained_people: list[str]) -> list[dict]:
    """Report each person with training photos of which none was used, and log a warning.

    all_rows are every training and test row, aligned or not, before duplicates are removed.
    """
    by_person: dict[str, list[dict]] = {}
    for row in all_rows:
        if row["split"] == TRAIN:
            by_person.setdefault(row["person"], []).append(row)
    trained = set(trained_people)
    report = []
    for person in sorted(set(by_person) - trained):
        rows = by_person[person]
        counts = collections.Counter(r["status"] for r in rows)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        folder = rows[0]["path"].split("/", 1)[0]
        reason = (f"person dropped: none of {len(rows)} training photos is usable ({summary}); "
                  f"{person!r} is not a class")
        logger.warning("%s: %s", f"train:{folder}/", reason)
        report.append({"path": f"train:{folder}/", "reason": reason})
    return report


def several_faces(rows: list[dict]) -> list[dict]:
    """Report the used photos in which more than one face was found."""
    return [
        {"path": report_path(r), "faces": r["faces"],
         "reason": f"{r['faces']} faces found; the largest face nearest the centre was used"}
        for r in rows if r.get("several_faces")
    ]
