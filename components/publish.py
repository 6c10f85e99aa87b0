"""publish: a validated model becomes a new version in the catalog."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def publish(ir: Input[Model], model: Input[Model], report: Input[Artifact], store_uri: str = "",
            model_name: str = "facenet-classifier", s3_endpoint: str = "") -> str:
    """Publish the IRs, classifier and validation results as STORE/models/NAME/X.Y.Z.

    Args:
        ir: Output of convert.
        model: Output of train.
        report: The report output of validate.
        store_uri: s3://bucket/prefix or a folder; empty for $KUBEFACE_STORE or ~/.kubeface/store.
        model_name: Catalog name of the model.
        s3_endpoint: S3 endpoint URL; empty for $KUBEFACE_S3_ENDPOINT.

    Returns:
        The run summary as JSON, with model_uri set.
    """
    import json
    from pathlib import Path

    from kubeface.publish import run_publish, summary

    uri = run_publish(store_uri, model_name, Path(ir.path), Path(model.path), Path(report.path), s3_endpoint)
    print(f"published {uri}")
    return json.dumps(summary(Path(model.path), Path(report.path), uri), ensure_ascii=False)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def report_rejected(model: Input[Model], report: Input[Artifact]) -> str:
    """Report a model that failed validation; nothing is published.

    Returns:
        The run summary as JSON, with published false.
    """
    import json
    from pathlib import Path

    from kubeface.publish import summary

    result = summary(Path(model.path), Path(report.path), "")
    print(f"not published: {result['reason']}")
    return json.dumps(result, ensure_ascii=False)
