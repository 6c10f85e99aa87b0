"""Fuzz the dataset scanner with arbitrary file and folder names (any bytes a POSIX name allows).

Every file must come out once: as a photo, as a skipped file, or under a skipped folder. Bounded
for CI by a fixed number of examples and a per-example deadline.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import tempfile
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeface.datasets import TRAIN, check_person_name, printable_name, scan_folder
from kubeface.errors import DatasetError

FUZZ_SETTINGS = settings(max_examples=int(os.environ.get("KUBEFACE_FUZZ_EXAMPLES", "100")),
                         deadline=datetime.timedelta(seconds=5),
                         suppress_health_check=[HealthCheck.too_slow], database=None)

# POSIX names: any bytes but '/' and NUL, not '.' or '..'; short enough for every file system.
names = st.binary(min_size=1, max_size=24).filter(lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b".."))
suffixes = st.sampled_from([b".jpg", b".JPEG", b".png", b".txt", b"", b".webp", b".DS_Store"])
files = st.tuples(names, suffixes, st.binary(max_size=64))
trees = st.lists(st.tuples(st.one_of(st.none(), names), files), max_size=12)


def _build(root: bytes, tree) -> dict[bytes, bytes]:
    """Create the tree; returns {relative path: content} of the files that were created."""
    created = {}
    for folder, (stem, suffix, content) in tree:
        name = stem + suffix
        relative = name if folder is None else folder + b"/" + name
        parent = root if folder is None else root + b"/" + folder
        if folder is not None and not os.path.isdir(parent):
            if os.path.exists(parent):
                continue
            os.mkdir(parent)
        target = root + b"/" + relative
        if os.path.exists(target) or len(name) > 255:
            continue
        with open(target, "wb") as stream:
            stream.write(content)
        created[relative] = content
    return created


@FUZZ_SETTINGS
@given(trees)
def test_scan_accounts_for_every_file(tree):
    with tempfile.TemporaryDirectory(prefix="kubeface-fuzz-") as scratch:
        root = os.fsencode(scratch)
        created = _build(root, tree)
        photos, skipped = scan_folder(os.fsdecode(root), TRAIN)
        skipped_paths = [item.path for item in skipped]
        for path in skipped_paths:
            assert path.startswith("train:")
            path.encode("utf-8")
        photo_paths = {os.fsencode(photo.path): photo for photo in photos}
        assert len(photo_paths) == len(photos)
        for relative, content in created.items():
            reported = "train:" + printable_name(os.fsdecode(relative))
            folder = relative.split(b"/")[0]
            under_skipped = b"/" in relative and "train:" + printable_name(os.fsdecode(folder)) in skipped_paths
            if relative in photo_paths:
                photo = photo_paths[relative]
                assert photo.sha256 == hashlib.sha256(content).hexdigest()
                assert photo.person == unicodedata.normalize("NFC", os.fsdecode(folder))
                assert check_person_name(photo.person) == photo.person
                assert reported not in skipped_paths
            else:
                assert reported in skipped_paths or under_skipped


@FUZZ_SETTINGS
@given(st.text(max_size=30))
def test_person_name_accepted_or_rejected(name):
    try:
        accepted = check_person_name(name)
    except DatasetError as error:
        assert str(error).startswith("invalid person name")
        return
    assert accepted == name
    assert "/" not in name
    assert "\\" not in name
    assert name not in ("", ".", "..")
    assert name == name.strip()
    name.encode("utf-8")
