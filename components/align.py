"""align: MTCNN detection and a 160 x 160 crop with margin of the face in each photo."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def align(dataset: Input[Dataset], ir: Input[Model], aligned: Output[Dataset], shard_index: int = 0,
          shard_count: int = 1, margin: int = 24, image_size: int = 160, embedding_cache: bool = True,
          store_uri: str = "", s3_endpoint: str = ""):
    """Detect, choose and crop the face of each photo in one shard of the dataset.

    Args:
        dataset: Output of fetch.
        ir: Output of convert.
        aligned: crops.npz (N x S x S x 3 uint8) and index.json, one row per photo with its status.
        shard_index: Which slice of the sorted photo list this task handles.
        shard_count: Number of slices.
        margin: Pixels added around the face box in total, before resizing.
        image_size: Side of the square crop in pixels.
        embedding_cache: Reuse and fill the store's cache of crops and embeddings, keyed by photo
            content, IR checksums and these settings.
        store_uri: Store holding the cache; empty for $KUBEFACE_STORE or ~/.kubeface/store.
        s3_endpoint: S3 endpoint URL; empty for $KUBEFACE_S3_ENDPOINT.
    """
    from pathlib import Path

    from kubeface import stages

    result = stages.run_align(str(Path(dataset.path) / "train"), Path(ir.path), Path(aligned.path),
                              test_dataset_uri=stages.test_folder(Path(dataset.path)),
                              shard_index=int(shard_index), shard_count=int(shard_count),
                              margin=margin, image_size=image_size, s3_endpoint=s3_endpoint,
                              unknown_dataset_uri=stages.unknown_folder(Path(dataset.path)),
                              use_cache=embedding_cache, store_uri=store_uri)
    aligned.metadata.update(result)
