"""Time dataset pushes and fetches of the bundled demo photos: local folder against SeaweedFS.

Usage: .venv/bin/python benchmarks/catalog.py [--repeats 3]

Starts its own SeaweedFS (`weed mini`, the test fixture's settings) on 127.0.0.1 and prints a
Markdown table: the median seconds of each operation and its ratio to a push to a local folder
in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from s3server import SeaweedFS  # noqa: E402

from kubeface import dataset_catalog  # noqa: E402
from kubeface.catalog import Catalog  # noqa: E402
from kubeface.localrun import bundled_demo  # noqa: E402


class Interrupted(Exception):
    """Raised from the progress callback before the manifest is written."""


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def measure(store_uri: str, photos: Path, repeats: int, work: Path) -> dict[str, float]:
    """Return median seconds of a push, a resumed push with every photo present, and a fetch."""
    pushes, resumes, fetches = [], [], []
    total = len(list(photos.glob("*/*.jpg")))
    for index in range(repeats):
        version = f"1.0.{index}"
        pushes.append(timed(lambda: dataset_catalog.push(photos, "faces", version, store_uri)))

        sent = []

        def stop_at_last(path: str, action: str) -> None:
            sent.append(path)
            if len(sent) == total:
                raise Interrupted()

        resumed = f"2.0.{index}"
        try:
            dataset_catalog.push(photos, "faces", resumed, store_uri, progress=stop_at_last)
        except Interrupted:
            pass
        resumes.append(timed(lambda: dataset_catalog.push(photos, "faces", resumed, store_uri)))

        catalog = Catalog.open(store_uri)
        destination = Path(tempfile.mkdtemp(prefix="fetch-", dir=work)) / "dataset"
        fetches.append(timed(lambda: catalog.fetch("datasets", "faces", version, destination=destination)))
    return {"push": statistics.median(pushes), "resume": statistics.median(resumes),
            "fetch": statistics.median(fetches)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per operation; the median is reported")
    args = parser.parse_args()
    photos = bundled_demo() / "dataset"
    with tempfile.TemporaryDirectory(prefix="kubeface-bench-") as scratch:
        work = Path(scratch)
        os.environ["KUBEFACE_CACHE"] = str(work / "cache")
        server = SeaweedFS(work / "seaweedfs")
        server.start()
        try:
            os.environ.update(server.environment())
            results = {"local folder": measure(str(work / "store"), photos, args.repeats, work)}
            os.environ["KUBEFACE_S3_CONDITIONAL_WRITES"] = "on"
            results["SeaweedFS, If-None-Match"] = measure(server.store_uri(), photos, args.repeats, work)
            os.environ["KUBEFACE_S3_CONDITIONAL_WRITES"] = "off"
            results["SeaweedFS, listing fallback"] = measure(server.store_uri(), photos, args.repeats, work)
        finally:
            server.close()
    reference = results["local folder"]["push"]
    size = sum(p.stat().st_size for p in photos.glob("*/*.jpg"))
    print(f"{len(list(photos.glob('*/*.jpg')))} photos, {size / 1e6:.2f} MB; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; median of {args.repeats}; ratio = seconds / local push seconds")
    print()
    print("| Store | push s | resume s | fetch s | push ratio | resume ratio | fetch ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row['push']:.2f} | {row['resume']:.2f} | {row['fetch']:.2f} | "
              f"{row['push'] / reference:.1f} | {row['resume'] / reference:.1f} | {row['fetch'] / reference:.1f} |")


if __name__ == "__main__":
    main()
