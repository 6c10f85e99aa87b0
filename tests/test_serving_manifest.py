"""The InferenceService manifest, read into the kserve and Kubernetes SDK models.

No cluster runs here, so the manifest is checked the way the API server's schema would read
it: each document is built field by field into the SDK's model classes, rejecting any field
the model does not define, and must serialize back to the same YAML content.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest
import yaml

from kubeface.imagerefs import PREDICTOR_IMAGE

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": float, "object": object}


def build(data, type_name: str):
    """Build SDK model objects from plain data, failing on fields the model does not define."""
    import kubernetes.client.models as k8s_models

    from kubeface.serving.kserve_import import kserve  # noqa: F401

    import kserve.models as kserve_models

    if type_name.startswith("list["):
        assert isinstance(data, list), f"expected a list for {type_name}, got {data!r}"
        return [build(item, type_name[5:-1]) for item in data]
    match = re.match(r"dict\(([^,]*), (.*)\)", type_name)
    if match:
        assert isinstance(data, dict), f"expected a mapping for {type_name}, got {data!r}"
        return {key: build(value, match.group(2)) for key, value in data.items()}
    if type_name in PRIMITIVES:
        return data
    model = getattr(kserve_models, type_name, None) or getattr(k8s_models, type_name)
    assert isinstance(data, dict), f"expected a mapping for {type_name}, got {data!r}"
    unknown = set(data) - set(model.attribute_map.values())
    assert not unknown, f"{type_name} has no fields {sorted(unknown)}"
    names = {key: attr for attr, key in model.attribute_map.items()}
    return model(**{names[key]: build(value, model.openapi_types[names[key]]) for key, value in data.items()})


@pytest.fixture(scope="module")
def documents() -> dict:
    text = (resources.files("kubeface.serving") / "inferenceservice.yaml").read_text(encoding="utf-8")
    return {doc["kind"]: doc for doc in yaml.safe_load_all(text)}


@pytest.fixture(scope="module")
def service(documents):
    return build(documents["InferenceService"], "V1beta1InferenceService")


@pytest.fixture(scope="module")
def container(service):
    containers = service.spec.predictor.containers
    assert len(containers) == 1
    return containers[0]


def test_documents_are_secret_account_service(documents):
    assert sorted(documents) == ["InferenceService", "Secret", "ServiceAccount"]


def test_service_round_trips_through_sdk(documents, service):
    from kubernetes.client import ApiClient

    assert ApiClient().sanitize_for_serialization(service) == documents["InferenceService"]


def test_service_api_version(service):
    assert service.api_version == "serving.kserve.io/v1beta1"
    assert service.kind == "InferenceService"


def test_image_from_imagerefs(container):
    assert container.image == PREDICTOR_IMAGE


def test_container_runs_kubeface_serve(service, container):
    assert container.command == ["kubeface"]
    assert container.args[0] == "serve"
    assert "--model=/mnt/models" in container.args
    assert "--host=0.0.0.0" in container.args
    assert f"--name={service.metadata.name}" in container.args
    assert "--http-port=8080" in container.args


def test_storage_uri_on_s3(container):
    env = {item.name: item.value for item in container.env}
    assert re.fullmatch(r"s3://[^/]+/models/[a-z0-9._-]+/\d+\.\d+\.\d+", env["STORAGE_URI"])


def test_credentials_through_service_account(documents, service):
    account = build(documents["ServiceAccount"], "V1ServiceAccount")
    secret = build(documents["Secret"], "V1Secret")
    assert service.spec.predictor.service_account_name == account.metadata.name
    assert [reference.name for reference in account.secrets] == [secret.metadata.name]
    assert set(secret.string_data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert "serving.kserve.io/s3-endpoint" in secret.metadata.annotations


def test_resources_requests_and_limits(container):
    requests, limits = container.resources.requests, container.resources.limits
    assert set(requests) == {"cpu", "memory"}
    assert set(limits) == {"cpu", "memory"}
    assert requests["cpu"] == limits["cpu"]


def test_probes_use_served_name(service, container):
    port = container.ports[0].container_port
    assert container.readiness_probe.http_get.path == f"/v2/models/{service.metadata.name}/ready"
    assert container.readiness_probe.http_get.port == port
    assert container.liveness_probe.http_get.path == "/v2/health/live"
    assert container.liveness_probe.http_get.port == port


def test_args_parse_with_serve_command(container):
    from kubeface.cli import build_parser

    args = build_parser().parse_args(container.args)
    assert args.model == "/mnt/models"
    assert args.host == "0.0.0.0"
    assert args.http_port == container.ports[0].container_port
