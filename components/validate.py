"""validate: held-out accuracy, confusion matrix and the accuracy gate."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Input, Metrics, Model, Output

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate(model: Input[Model], metrics: Output[Metrics], confusion: Output[ClassificationMetrics],
             plot: Output[HTML], report: Output[Artifact], roc: Output[ClassificationMetrics],
             min_accuracy: float = 0.9, target_far: float = 0.01, require_not_worse: bool = False,
             store_uri: str = "", model_name: str = "", s3_endpoint: str = "") -> bool:
    """Score the held-out photos; the single bool output gates publishing.

    Args:
        model: Output of train.
        metrics: accuracy, n_test, n_train, the rejection thresholds and the true- and
            false-accept rates as KFP scalar metrics.
        confusion: The confusion matrix, shown in the run's page.
        plot: The confusion matrix and ROC PNGs inside an HTML page.
        report: report.json, confusion_matrix.png and roc_curve.png.
        roc: ROC curve of the distance score: known test photos against unknown people.
        min_accuracy: Accuracy needed to pass, in [0, 1].
        target_far: False-accept rate at which the rejection thresholds are chosen, in [0, 1).
        require_not_worse: Also fail when accuracy is lower than that of the version currently
            published under model_name, on the same test photos.
        store_uri: Store of the published versions; empty for $KUBEFACE_STORE or ~/.kubeface/store.
        model_name: Name to compare with; empty for no comparison.
        s3_endpoint: S3 endpoint URL; empty for $KUBEFACE_S3_ENDPOINT.

    Returns:
        Whether accuracy >= min_accuracy (and, with require_not_worse, not below the published one).
    """
    import base64
    from pathlib import Path

    from kubeface.rejection import ROC_PNG
    from kubeface.validation import CONFUSION_PNG, run_validate

    result = run_validate(Path(model.path), Path(report.path), min_accuracy, target_far, require_not_worse,
                          store_uri, model_name, s3_endpoint)
    metrics.log_metric("accuracy", result["accuracy"])
    metrics.log_metric("n_test", result["n_test"])
    metrics.log_metric("n_train", result["n_train"])
    rejection = result["rejection"]
    for key in ("max_distance", "min_probability", "true_accept_rate", "false_accept_rate"):
        if rejection.get(key) is not None:
            metrics.log_metric(key, rejection[key])
    confusion.log_confusion_matrix(result["classes"], result["confusion_matrix"])
    curve = result["rejection_details"].get("roc", {}).get("distance")
    if curve:
        roc.log_roc_curve(curve["fpr"], curve["tpr"], curve["thresholds"])
    images = ""
    for name in (CONFUSION_PNG, ROC_PNG):
        if (Path(report.path) / name).is_file():
            png = base64.b64encode((Path(report.path) / name).read_bytes()).decode()
            images += f'<img src="data:image/png;base64,{png}"/>'
    Path(plot.path).write_text(f'<html><body><h3>{result["reason"]}</h3>{images}</body></html>')
    return bool(result["passed"])
