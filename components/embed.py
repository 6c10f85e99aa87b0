"""embed: FaceNet embeddings of one shard's crops on the OpenVINO runtime."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def embed(aligned: Input[Dataset], ir: Input[Model], embeddings: Output[Dataset], s3_endpoint: str = ""):
    """Compute 512-d L2-normalised embeddings of the aligned crops, in batches.

    Args:
        aligned: Output of align.
        ir: Output of convert.
        embeddings: embeddings.npz (N x 512 float32) and index.json.
        s3_endpoint: S3 endpoint URL of the embedding cache's store; empty for $KUBEFACE_S3_ENDPOINT.
    """
    from pathlib import Path

    from kubeface import stages

    embeddings.metadata.update(stages.run_embed(Path(aligned.path), Path(ir.path), Path(embeddings.path),
                                                 s3_endpoint))
