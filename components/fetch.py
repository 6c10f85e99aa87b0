"""fetch: the dataset, downloaded and checked, and the list of shards to process."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Output

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def fetch(dataset: Output[Dataset], dataset_uri: str, test_dataset_uri: str = "", s3_endpoint: str = "",
          shards: int = 1, unknown_dataset_uri: str = "") -> List[int]:
    """Download a dataset (a catalog URI or a folder) with every checksum verified.

    Args:
        dataset: Folder with train/<person>/<photo>, test/ when given, and plan.json.
        dataset_uri: STORE/datasets/NAME/VERSION, or a folder <root>/<person>/<photo>.
        test_dataset_uri: Held-out photos in the same form; empty for a seeded split.
        s3_endpoint: S3 endpoint URL for s3:// URIs; empty for $KUBEFACE_S3_ENDPOINT.
        shards: Number of parallel align and embed tasks.
        unknown_dataset_uri: Photos of people absent from training, used to choose and measure
            the rejection thresholds; empty to leave people out of the training set instead.

    Returns:
        The shard indices 0 .. shards-1.
    """
    from pathlib import Path

    from kubeface import stages

    if shards < 1:
        raise ValueError(f"shards must be at least 1; got {shards}")
    plan = stages.run_fetch(dataset_uri, Path(dataset.path), test_dataset_uri, s3_endpoint, unknown_dataset_uri)
    dataset.metadata["people"] = len(plan["people"])
    dataset.metadata["photos"] = plan["photos"]
    dataset.metadata["digest"] = plan["dataset"]["digest"]
    return list(range(int(shards)))
