"""Serve a published model version with KServe: create or update an InferenceService.

The predictor runs in kubeface's predictor image as a custom container. Before it starts,
KServe's storage initializer copies the model version from S3 to /mnt/models. The initializer
reads the S3 endpoint and credentials from the service account named in the spec.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass

from kubeface.errors import ConfigurationError, InvalidInputError, KubefaceError

logger = logging.getLogger(__name__)

API_VERSION = "serving.kserve.io/v1beta1"
# For a custom predictor, KServe injects the storage initializer only for the container with this
# name, and reads the model location from that container's STORAGE_URI variable.
CONTAINER_NAME = "kserve-container"
STORAGE_URI_ENV = "STORAGE_URI"
MODEL_MOUNT = "/mnt/models"
HTTP_PORT = 8080
GRPC_PORT = 8081
MODEL_URI_ANNOTATION = "kubeface.io/model-uri"
MODEL_VERSION_LABEL = "kubeface.io/model-version"
MODEL_NAME_LABEL = "kubeface.io/model-name"
# DNS-1035 label, as Kubernetes requires for the Service KServe creates from the name.
ISVC_NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
MODEL_URI_PATTERN = re.compile(r"^s3://[^/]+/(?:.+/)?models/(?P<name>[^/]+)/(?P<version>\d+\.\d+\.\d+)/?$")
DEFAULT_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}


@dataclass(frozen=True)
class Deployment:
    """Result of a deploy: the service's name, namespace and URL, and the model version it serves."""

    name: str
    namespace: str
    url: str
    model_uri: str
    created: bool
    canary_traffic_percent: int | None

    def to_json(self) -> dict:
        return {"name": self.name, "namespace": self.namespace, "url": self.url, "model_uri": self.model_uri,
                "created": self.created, "canary_traffic_percent": self.canary_traffic_percent}


def model_uri_from(value: str) -> str:
    """Return the model URI in value: a URI, or publish's JSON summary with its model_uri."""
    text = (value or "").strip()
    if text.startswith("{"):
        try:
            text = json.loads(text).get("model_uri") or ""
        except (json.JSONDecodeError, AttributeError) as error:
            raise InvalidInputError(f"expected a model URI or publish's JSON summary; got {value[:80]!r}") from error
        if not text:
            raise InvalidInputError("the publish summary has no model_uri: the model was not published")
    return text


def check_model_uri(uri: str) -> re.Match:
    """Accept only s3://BUCKET/[PREFIX/]models/NAME/X.Y.Z, the form KServe can download."""
    match = MODEL_URI_PATTERN.match(uri)
    if not match:
        raise InvalidInputError(
            f"cannot serve model {uri!r} with KServe: expected s3://BUCKET/[PREFIX/]models/NAME/X.Y.Z; "
            "publish to an S3 store (store_uri s3://...) so the storage initializer can download it"
        )
    return match


def check_isvc_name(name: str) -> str:
    """Accept a DNS-1035 label, the names Kubernetes allows for the Service KServe creates."""
    if not ISVC_NAME_PATTERN.match(name or ""):
        raise InvalidInputError(
            f"invalid InferenceService name {name!r}: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return name


def check_canary(percent: int) -> int | None:
    """Map the canary setting to KServe's field: 100 means no canary (None), 1-99 a canary."""
    percent = int(percent)
    if percent == 100:
        return None
    if not 1 <= percent <= 99:
        raise InvalidInputError(
            f"canary_traffic_percent must be 1-99 for a canary, or 100 to send all traffic to the new "
            f"version; got {percent}"
        )
    return percent


def build_inference_service(name: str, namespace: str, model_uri: str, image: str, served_name: str = "",
                            service_account: str = "", canary_traffic_percent: int | None = None):
    """Build the V1beta1InferenceService that serves model_uri with the kubeface predictor."""
    from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1PredictorSpec
    from kubernetes import client

    check_isvc_name(name)
    match = check_model_uri(model_uri)
    served_name = served_name or match["name"]
    args = ["--model", MODEL_MOUNT, "--name", served_name, "--host", "0.0.0.0",
            "--http-port", str(HTTP_PORT), "--grpc-port", str(GRPC_PORT)]
    container = client.V1Container(
        name=CONTAINER_NAME,
        image=image,
        args=args,
        # A trailing slash keeps KServe's S3 prefix listing inside this version: without it,
        # s3://.../1.0.1 would also match the objects of 1.0.10.
        env=[client.V1EnvVar(name=STORAGE_URI_ENV, value=model_uri.rstrip("/") + "/")],
        ports=[client.V1ContainerPort(container_port=HTTP_PORT, protocol="TCP")],
        resources=client.V1ResourceRequirements(**DEFAULT_RESOURCES),
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path=f"/v1/models/{served_name}", port=HTTP_PORT),
            period_seconds=5, failure_threshold=3),
        liveness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/", port=HTTP_PORT),
            initial_delay_seconds=60, period_seconds=15, failure_threshold=4),
    )
    predictor = V1beta1PredictorSpec(
        containers=[container],
        service_account_name=service_account or None,
        canary_traffic_percent=canary_traffic_percent,
    )
    metadata = client.V1ObjectMeta(
        name=name,
        namespace=namespace,
        labels={MODEL_NAME_LABEL: match["name"], MODEL_VERSION_LABEL: match["version"],
                "app.kubernetes.io/name": "kubeface", "app.kubernetes.io/component": "predictor"},
        annotations={MODEL_URI_ANNOTATION: model_uri},
    )
    return V1beta1InferenceService(api_version=API_VERSION, kind="InferenceService", metadata=metadata,
                                   spec=V1beta1InferenceServiceSpec(predictor=predictor))


def _kserve_client():
    """Return a KServeClient: $KUBECONFIG when set, else in-cluster credentials in a pod, else ~/.kube/config."""
    from kserve import KServeClient

    try:
        # Passed explicitly because the kubernetes package reads $KUBECONFIG once, at import.
        return KServeClient(config_file=os.environ.get("KUBECONFIG") or None)
    except Exception as error:  # the kubernetes config loaders raise several unrelated types
        raise ConfigurationError(
            f"failed to configure the Kubernetes client ({type(error).__name__}: {error}); run in a pod "
            "with a service account, or set KUBECONFIG"
        ) from error


def default_namespace() -> str:
    """Return the pod's own namespace in a cluster, else "default" (as KServe's client does)."""
    from kserve.utils import utils

    return utils.get_default_target_namespace().strip()


def _get_existing(kserve_client, name: str, namespace: str) -> dict | None:
    from kserve.constants import constants
    from kubernetes.client.rest import ApiException

    try:
        return kserve_client.api_instance.get_namespaced_custom_object(
            constants.KSERVE_GROUP, constants.KSERVE_V1BETA1_VERSION, namespace,
            constants.KSERVE_PLURAL_INFERENCESERVICE, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise KubefaceError(f"failed to read InferenceService {namespace}/{name}: HTTP {error.status} "
                            f"{error.reason}; check the service account's permissions in {namespace}") from error


def deploy(model_uri: str, name: str, namespace: str = "", image: str | None = None, served_name: str = "",
           canary_traffic_percent: int = 100, service_account: str = "", timeout_seconds: float = 600,
           poll_seconds: float = 5, kserve_client=None) -> Deployment:
    """Create the InferenceService, or update it to serve model_uri, and wait until it is ready.

    canary_traffic_percent 1-99 sends that share of traffic to the new version of an existing
    service and the rest to the version that served before; 100 moves all traffic at once. A new
    service always gets all traffic.
    """
    from kubeface.imagerefs import PREDICTOR_IMAGE

    model_uri = model_uri_from(model_uri)
    check_model_uri(model_uri)
    check_isvc_name(name)
    canary = check_canary(canary_traffic_percent)
    namespace = namespace or default_namespace()
    kserve_client = kserve_client or _kserve_client()
    existing = _get_existing(kserve_client, name, namespace)
    if existing is None and canary is not None:
        logger.info("InferenceService %s/%s does not exist yet; a canary needs a previous version, "
                    "so the new service gets all traffic", namespace, name)
        canary = None
    isvc = build_inference_service(name, namespace, model_uri, image or PREDICTOR_IMAGE, served_name,
                                   service_account, canary)
    try:
        if existing is None:
            logger.info("creating InferenceService %s/%s for %s", namespace, name, model_uri)
            result = kserve_client.create(isvc, namespace=namespace)
        else:
            logger.info("updating InferenceService %s/%s to %s (canary %s%%)", namespace, name, model_uri,
                        canary if canary is not None else 100)
            isvc.metadata.resource_version = existing["metadata"]["resourceVersion"]
            result = kserve_client.replace(name, isvc, namespace=namespace)
    except RuntimeError as error:
        # KServeClient wraps the API error in a RuntimeError whose text contains the status and body.
        raise KubefaceError(f"failed to {'create' if existing is None else 'update'} InferenceService "
                            f"{namespace}/{name}: {error}") from error
    generation = int(result.get("metadata", {}).get("generation") or 0)
    status = wait_ready(kserve_client, name, namespace, generation, timeout_seconds, poll_seconds)
    return Deployment(name=name, namespace=namespace, url=status.get("url", ""), model_uri=model_uri,
                      created=existing is None, canary_traffic_percent=canary)


def _conditions_text(status: dict) -> str:
    parts = []
    for condition in status.get("conditions", []):
        text = f"{condition.get('type')}={condition.get('status')}"
        if condition.get("reason") or condition.get("message"):
            text += f" ({condition.get('reason', '')}: {condition.get('message', '')})"
        parts.append(text)
    return "; ".join(parts) or "no conditions reported"


def wait_ready(kserve_client, name: str, namespace: str, generation: int, timeout_seconds: float,
               poll_seconds: float) -> dict:
    """Poll until the service reports Ready for the given generation, and return its status."""
    deadline = time.monotonic() + timeout_seconds
    status: dict = {}
    while True:
        current = _get_existing(kserve_client, name, namespace) or {}
        status = current.get("status", {})
        ready = any(c.get("type") == "Ready" and str(c.get("status")).lower() == "true"
                    for c in status.get("conditions", []))
        if ready and int(status.get("observedGeneration") or 0) >= generation:
            logger.info("InferenceService %s/%s is ready at %s", namespace, name, status.get("url"))
            return status
        if time.monotonic() >= deadline:
            raise KubefaceError(
                f"InferenceService {namespace}/{name} was not ready after {timeout_seconds:g} s: "
                f"{_conditions_text(status)}; see `kubectl describe inferenceservice {name} -n {namespace}`"
            )
        time.sleep(poll_seconds)
