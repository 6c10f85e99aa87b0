"""deploy: serve a published model version with KServe."""

from kfp import dsl

from kubeface.imagerefs import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy(model_uri: str, isvc_name: str = "kubeface", namespace: str = "", canary_traffic_percent: int = 100,
           service_account: str = "", predictor_image: str = "", timeout_seconds: int = 600) -> str:
    """Create or update the InferenceService that serves a model version, and wait until it is ready.

    Args:
        model_uri: s3://BUCKET/[PREFIX/]models/NAME/X.Y.Z, or the JSON summary output by publish.
        isvc_name: Name of the InferenceService (a DNS-1035 label).
        namespace: Namespace of the InferenceService; empty for the namespace this task runs in.
        canary_traffic_percent: 1-99 routes that share of traffic to the new version of an existing
            service and the rest to the previous one; 100 moves all traffic to the new version.
        service_account: Service account whose secret gives KServe's storage initializer the S3
            endpoint and credentials; empty for the namespace's default.
        predictor_image: Image of the predictor container; empty for kubeface.imagerefs.PREDICTOR_IMAGE
            as the component image defines it.
        timeout_seconds: How long to wait for the service to become ready.

    Returns:
        The service URL reported by KServe.
    """
    import json

    from kubeface.deploy import deploy as deploy_model

    result = deploy_model(model_uri, isvc_name, namespace, image=predictor_image or None,
                          canary_traffic_percent=canary_traffic_percent, service_account=service_account,
                          timeout_seconds=timeout_seconds)
    print(json.dumps(result.to_json()))
    return result.url
