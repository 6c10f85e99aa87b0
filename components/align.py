"""align: MTCNN detection and a 160 x 160 crop with margin of the face in each photo."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def align(dataset: Input[Dataset], ir: Input[Model], aligned: Output[Dataset], shard_index: int = 0,
          shard_count: int = 1, margin: int = 32, image_size: int = 160):
    """Detect, choose and crop the face of each photo in one shard of the dataset.

    Args:
        dataset: Output of fetch.
        ir: Output of convert.
        aligned: crops.npz (N x S x S x 3 uint8) and index.json, one row per photo with its status.
        shard_index: Which slice of the sorted photo list this task handles.
        shard_count: Number of slices.
        margin: Pixels added around the face box in total, before resizing.
        image_size: Side of the square crop in pixels.
    """
    from pathlib import Path

    from kubeface import stages

    result = stages.run_align(str(Path(dataset.path) / "train"), Path(ir.path), Path(aligned.path),
                              test_dataset_uri=stages.test_folder(Path(dataset.path)),
                              shard_index=int(shard_index), shard_count=int(shard_count),
                              margin=margin, image_size=image_size)
    aligned.metadata.update(result)
