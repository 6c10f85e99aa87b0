"""convert: the pretrained FaceNet and MTCNN weights as OpenVINO IR."""

from kfp import dsl
from kfp.dsl import Model, Output

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def convert(ir: Output[Model], precision: str = "FP32"):
    """Convert FaceNet (TensorFlow frozen graph) and MTCNN (ONNX) to OpenVINO IR.

    Args:
        ir: Folder with facenet, pnet, rnet and onet .xml/.bin and ir.json (checksums).
        precision: Weight precision of the IRs, FP32 or FP16.
    """
    from pathlib import Path

    from kubeface import stages

    info = stages.run_convert(Path(ir.path), precision)
    ir.metadata["precision"] = info["precision"]
    ir.metadata["openvino"] = info["openvino"]
