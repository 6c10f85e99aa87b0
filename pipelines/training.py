"""The training pipeline: convert, fetch, align and embed per shard, train, validate, publish."""

from pathlib import Path

from kfp import dsl, kubernetes

from kubeface.components import align, convert, embed, fetch, publish, report_rejected, train, validate
from kubeface.components.deploy import deploy as deploy_component
from kubeface.imagerefs import PREDICTOR_IMAGE

PIPELINE_NAME = "kubeface-train"
COMPILED_YAML = Path(__file__).with_name("kubeface-train.yaml")
S3_SECRET = "kubeface-s3"
"""Kubernetes secret with the S3 credentials, in the namespace the pipeline runs in."""
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def use_s3_secret(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Give a task that reads or writes the store the S3 credentials, as environment variables.

    The YAML names only the secret and its keys; the values stay in the cluster.
    """
    return kubernetes.use_secret_as_env(task, secret_name=S3_SECRET,
                                        secret_key_to_env={key: key for key in S3_SECRET_KEYS})


@dsl.pipeline(name=PIPELINE_NAME, description="Train, validate and publish a FaceNet face recognizer.")
def training_pipeline(
    dataset_uri: str,
    test_dataset_uri: str = "",
    store_uri: str = "",
    s3_endpoint: str = "",
    model_name: str = "facenet-classifier",
    min_accuracy: float = 0.9,
    margin: int = 24,
    image_size: int = 160,
    precision: str = "FP32",
    shards: int = 1,
    unknown_dataset_uri: str = "",
    target_far: float = 0.01,
    require_not_worse: bool = False,
    embedding_cache: bool = True,
    deploy: bool = False,
    serving_namespace: str = "",
    isvc_name: str = "kubeface",
    canary_traffic_percent: int = 100,
    serving_service_account: str = "",
) -> str:
    """Turn a folder or dataset version of person photos into a published face recognizer.

    Returns:
        The run summary as JSON (accuracy, passed, published, model_uri, labels, skipped).
    """
    # Step 1: the models, and the dataset with every checksum verified.
    convert_task = convert(precision=precision)
    fetch_task = fetch(dataset_uri=dataset_uri, test_dataset_uri=test_dataset_uri,
                       s3_endpoint=s3_endpoint, shards=shards, unknown_dataset_uri=unknown_dataset_uri)
    # The data behind a dataset URI or folder can change while the URI stays the same.
    fetch_task.set_caching_options(False)
    use_s3_secret(fetch_task)

    # Step 2: align and embed, one task per shard.
    with dsl.ParallelFor(fetch_task.outputs["Output"], name="shard") as shard_index:
        align_task = align(dataset=fetch_task.outputs["dataset"], ir=convert_task.outputs["ir"],
                           shard_index=shard_index, shard_count=shards, margin=margin, image_size=image_size,
                           embedding_cache=embedding_cache, store_uri=store_uri, s3_endpoint=s3_endpoint)
        embed_task = embed(aligned=align_task.outputs["aligned"], ir=convert_task.outputs["ir"],
                           s3_endpoint=s3_endpoint)
        # align and embed read and write the crop and embedding cache in the store.
        use_s3_secret(align_task)
        use_s3_secret(embed_task)

    # Step 3: train and validate.
    train_task = train(shards=dsl.Collected(embed_task.outputs["embeddings"]))
    validate_task = validate(model=train_task.outputs["model"], min_accuracy=min_accuracy, target_far=target_far,
                             require_not_worse=require_not_worse, store_uri=store_uri, model_name=model_name,
                             s3_endpoint=s3_endpoint)
    # validate reads the published version it compares against.
    use_s3_secret(validate_task)

    # Step 4: publish only a model that passed the gate.
    with dsl.If(validate_task.outputs["Output"] == True, name="passed"):  # noqa: E712
        publish_task = publish(ir=convert_task.outputs["ir"], model=train_task.outputs["model"],
                               report=validate_task.outputs["report"], store_uri=store_uri,
                               model_name=model_name, s3_endpoint=s3_endpoint)
        use_s3_secret(publish_task)
        # Step 5: serve the new version, when asked to.
        with dsl.If(deploy == True, name="deploy"):  # noqa: E712
            deploy_component(model_uri=publish_task.output, isvc_name=isvc_name, namespace=serving_namespace,
                             canary_traffic_percent=canary_traffic_percent,
                             service_account=serving_service_account, predictor_image=PREDICTOR_IMAGE)
    with dsl.Else(name="failed"):
        rejected_task = report_rejected(model=train_task.outputs["model"], report=validate_task.outputs["report"])
    return dsl.OneOf(publish_task.output, rejected_task.output)


def compile_pipeline(output: Path = COMPILED_YAML) -> Path:
    """Compile the pipeline to YAML."""
    from kfp import compiler

    compiler.Compiler().compile(training_pipeline, str(output))
    return output
