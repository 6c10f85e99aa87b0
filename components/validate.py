"""validate: held-out accuracy, confusion matrix and the accuracy gate."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Input, Metrics, Model, Output

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate(model: Input[Model], metrics: Output[Metrics], confusion: Output[ClassificationMetrics],
             plot: Output[HTML], report: Output[Artifact], min_accuracy: float = 0.9) -> bool:
    """Score the held-out photos; the single bool output gates publishing.

    Args:
        model: Output of train.
        metrics: accuracy, n_test, n_train and per-person recall as KFP scalar metrics.
        confusion: The confusion matrix, shown in the run's page.
        plot: The confusion matrix PNG inside an HTML page.
        report: report.json and confusion_matrix.png.
        min_accuracy: Accuracy needed to pass, in [0, 1].

    Returns:
        Whether accuracy >= min_accuracy.
    """
    import base64
    from pathlib import Path

    from kubeface.validation import CONFUSION_PNG, run_validate

    result = run_validate(Path(model.path), Path(report.path), min_accuracy)
    metrics.log_metric("accuracy", result["accuracy"])
    metrics.log_metric("n_test", result["n_test"])
    metrics.log_metric("n_train", result["n_train"])
    confusion.log_confusion_matrix(result["classes"], result["confusion_matrix"])
    png = base64.b64encode((Path(report.path) / CONFUSION_PNG).read_bytes()).decode()
    Path(plot.path).write_text(f'<html><body><h3>{result["reason"]}</h3>'
                               f'<img src="data:image/png;base64,{png}"/></body></html>')
    return bool(result["passed"])
