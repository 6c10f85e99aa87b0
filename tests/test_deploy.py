"""The deploy component against a stand-in for the Kubernetes API server.

No Kubernetes cluster or KServe controller can run here, so a small HTTP server on 127.0.0.1
responds to the InferenceService calls the kserve SDK client makes (get, create, replace), plays the
controller's part by reporting Ready after a number of reads, and records each request. Every
InferenceService the component sends is loaded into kserve's V1beta1InferenceService model,
field by field, and must come back unchanged.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kserve.models
import kubernetes.client
import pytest
import yaml
from kubeface.components import deploy as deploy_component
from kubernetes.client import ApiClient

from kubeface.deploy import MODEL_URI_ANNOTATION, deploy
from kubeface.errors import InvalidInputError, KubefaceError
from kubeface.imagerefs import PREDICTOR_IMAGE

PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"
MODEL_URI = "s3://faces/catalog/models/facenet-classifier/1.0.3"
SERVICE_URL = "http://faces.team-faces.example.test"


class RecordingKubernetesApi(BaseHTTPRequestHandler):
    """Respond to InferenceService get, create and replace like the API server, and record them."""

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append({"method": self.command, "path": self.path, "body": body})
        parts = self.path.split("?")[0][len(PREFIX):].split("/")
        return body, parts

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                           "message": message, "code": code})

    def do_GET(self):
        _, parts = self._record()
        key = (parts[0], parts[2]) if len(parts) == 3 else None
        stored = self.server.objects.get(key)
        if stored is None:
            self._status(404, "NotFound", f"inferenceservices.serving.kserve.io \"{parts[-1]}\" not found")
            return
        self.server.reads_since_write += 1
        self._reply(200, self.server.with_status(stored))

    def do_POST(self):
        body, parts = self._record()
        key = (parts[0], body["metadata"]["name"])
        if key in self.server.objects:
            self._status(409, "AlreadyExists", "already exists")
            return
        stored = json.loads(json.dumps(body))
        stored["metadata"].update(generation=1, resourceVersion="1", uid="3d5c9a4e")
        self.server.objects[key] = stored
        self.server.reads_since_write = 0
        self._reply(201, stored)

    def do_PUT(self):
        body, parts = self._record()
        key = (parts[0], parts[2])
        current = self.server.objects.get(key)
        if current is None:
            self._status(404, "NotFound", "not found")
            return
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            self._status(409, "Conflict", "the object has been modified")
            return
        stored = json.loads(json.dumps(body))
        stored["metadata"].update(generation=current["metadata"]["generation"] + 1, uid=current["metadata"]["uid"],
                                  resourceVersion=str(int(current["metadata"]["resourceVersion"]) + 1))
        self.server.objects[key] = stored
        self.server.reads_since_write = 0
        self._reply(200, stored)


class KubernetesApiServer(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), RecordingKubernetesApi)
        self.requests, self.objects = [], {}
        self.reads_since_write = 0
        self.ready_after_reads = 1
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def with_status(self, stored: dict) -> dict:
        generation = stored["metadata"]["generation"]
        if self.ready_after_reads is not None and self.reads_since_write >= self.ready_after_reads:
            status = {"observedGeneration": generation, "url": SERVICE_URL,
                      "conditions": [{"type": "Ready", "status": "True"}]}
        else:
            status = {"observedGeneration": generation - 1,
                      "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionMissing",
                                      "message": "Revision \"faces-predictor-00002\" failed with message: "
                                                 "Back-off pulling image"}]}
        return {**stored, "status": status}

    def writes(self) -> list[dict]:
        return [r for r in self.requests if r["method"] in ("POST", "PUT")]


@pytest.fixture
def kube_api(tmp_path, monkeypatch):
    server = KubernetesApiServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server.url}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "team-faces"}}],
        "users": [{"name": "test", "user": {"token": "kubeface-test-token"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _model_class(name: str):
    return getattr(kserve.models, name, None) or getattr(kubernetes.client, name)


def load_model(data, type_name: str):
    """Build data into the kserve or kubernetes model named type_name, rejecting unknown fields.

    The constructors run the models' client-side validation, so a required field that is missing
    (a container without a name, for example) raises ValueError.
    """
    if type_name.startswith("list["):
        return [load_model(item, type_name[5:-1]) for item in data]
    if type_name.startswith("dict("):
        value_type = type_name[5:-1].split(", ", 1)[1]
        return {key: load_model(value, value_type) for key, value in data.items()}
    if type_name in ("str", "int", "bool", "float", "object", "datetime"):
        return data
    cls = _model_class(type_name)
    by_json_name = {json_name: attribute for attribute, json_name in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json_name))
    assert not unknown, f"{type_name} has no field(s) {unknown}"
    arguments = {by_json_name[key]: load_model(value, cls.openapi_types[by_json_name[key]])
                 for key, value in data.items()}
    return cls(**arguments)


def validate_inference_service(body: dict):
    """Load a request body into V1beta1InferenceService and check it serializes back unchanged."""
    isvc = load_model(body, "V1beta1InferenceService")
    assert isinstance(isvc, kserve.models.V1beta1InferenceService)
    assert ApiClient().sanitize_for_serialization(isvc) == body
    return isvc


def publish_summary(uri: str) -> str:
    return json.dumps({"accuracy": 1.0, "passed": True, "published": True, "model_uri": uri})


def test_deploy_component_creates_service(kube_api, capsys):
    kube_api.ready_after_reads = 0
    url = deploy_component.python_func(model_uri=publish_summary(MODEL_URI), isvc_name="faces",
                                       namespace="team-faces", canary_traffic_percent=100,
                                       service_account="kubeface-serving", predictor_image=PREDICTOR_IMAGE,
                                       timeout_seconds=30)
    assert url == SERVICE_URL
    (write,) = kube_api.writes()
    assert write["method"] == "POST"
    assert write["path"] == PREFIX + "team-faces/inferenceservices"
    isvc = validate_inference_service(write["body"])
    predictor = isvc.spec.predictor
    (container,) = predictor.containers
    assert container.name == "kserve-container"
    assert container.image == PREDICTOR_IMAGE
    assert [(e.name, e.value) for e in container.env] == [("STORAGE_URI", MODEL_URI + "/")]
    assert container.args == ["--model", "/mnt/models", "--name", "facenet-classifier", "--host", "0.0.0.0",
                              "--http-port", "8080", "--grpc-port", "8081"]
    assert container.readiness_probe.http_get.path == "/v1/models/facenet-classifier"
    assert predictor.service_account_name == "kubeface-serving"
    assert predictor.canary_traffic_percent is None
    assert isvc.metadata.labels["kubeface.io/model-version"] == "1.0.3"
    assert isvc.metadata.annotations[MODEL_URI_ANNOTATION] == MODEL_URI
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"name": "faces", "namespace": "team-faces", "url": SERVICE_URL, "model_uri": MODEL_URI,
                       "created": True, "canary_traffic_percent": None}


def test_deploy_updates_with_canary(kube_api):
    first = deploy(MODEL_URI, "faces", "team-faces", poll_seconds=0.01, timeout_seconds=5)
    assert first.created is True
    new_uri = MODEL_URI.replace("1.0.3", "1.0.4")
    second = deploy(new_uri, "faces", "team-faces", canary_traffic_percent=25, poll_seconds=0.01,
                    timeout_seconds=5)
    assert second.created is False
    assert second.canary_traffic_percent == 25
    assert second.url == SERVICE_URL
    create, replace = kube_api.writes()
    assert create["method"] == "POST"
    assert replace["method"] == "PUT"
    assert replace["path"] == PREFIX + "team-faces/inferenceservices/faces"
    isvc = validate_inference_service(replace["body"])
    assert isvc.metadata.resource_version == "1"
    assert isvc.spec.predictor.canary_traffic_percent == 25
    assert isvc.spec.predictor.containers[0].env[0].value == new_uri + "/"
    assert kube_api.objects[("team-faces", "faces")]["metadata"]["generation"] == 2


def test_deploy_waits_for_new_generation(kube_api):
    kube_api.ready_after_reads = 3
    deploy(MODEL_URI, "faces", "team-faces", poll_seconds=0.01, timeout_seconds=5)
    reads = [r for r in kube_api.requests if r["method"] == "GET"]
    # One read to look for an existing service, then polls until the third read reports Ready.
    assert len(reads) == 4


def test_canary_ignored_on_create(kube_api):
    result = deploy(MODEL_URI, "faces", "team-faces", canary_traffic_percent=10, poll_seconds=0.01,
                    timeout_seconds=5)
    assert result.canary_traffic_percent is None
    (write,) = kube_api.writes()
    assert "canaryTrafficPercent" not in write["body"]["spec"]["predictor"]


def test_deploy_timeout_names_condition(kube_api):
    kube_api.ready_after_reads = None
    with pytest.raises(KubefaceError) as raised:
        deploy(MODEL_URI, "faces", "team-faces", poll_seconds=0.01, timeout_seconds=0.05)
    message = str(raised.value)
    assert "InferenceService team-faces/faces was not ready after 0.05 s" in message
    assert "Ready=False (RevisionMissing: Revision" in message


def test_deploy_default_namespace_outside_pod(kube_api):
    # Outside a pod (no service account folder), KServe's client uses the "default" namespace.
    deploy(MODEL_URI, "faces", "", poll_seconds=0.01, timeout_seconds=5)
    (write,) = kube_api.writes()
    assert write["path"] == PREFIX + "default/inferenceservices"


@pytest.mark.parametrize("model_uri, message", [
    ("/home/me/.kubeface/store/models/facenet-classifier/1.0.0", "publish to an S3 store"),
    ("s3://faces/models/facenet-classifier/latest", "expected s3://BUCKET/[PREFIX/]models/NAME/X.Y.Z"),
    (json.dumps({"published": False, "model_uri": ""}), "the model was not published"),
    ("{not json", "expected a model URI or publish's JSON summary"),
])
def test_deploy_rejects_model_uri(kube_api, model_uri, message):
    with pytest.raises(InvalidInputError) as raised:
        deploy(model_uri, "faces", "team-faces", poll_seconds=0.01, timeout_seconds=1)
    assert message in str(raised.value)
    assert kube_api.requests == []


@pytest.mark.parametrize("percent", [0, -5, 101])
def test_deploy_rejects_canary(kube_api, percent):
    with pytest.raises(InvalidInputError) as raised:
        deploy(MODEL_URI, "faces", "team-faces", canary_traffic_percent=percent, timeout_seconds=1)
    assert f"got {percent}" in str(raised.value)
    assert kube_api.requests == []


@pytest.mark.parametrize("name", ["Faces", "1faces", "faces_v2", "faces-", "f" * 64])
def test_deploy_rejects_service_name(kube_api, name):
    with pytest.raises(InvalidInputError) as raised:
        deploy(MODEL_URI, name, "team-faces", timeout_seconds=1)
    assert f"invalid InferenceService name {name!r}" in str(raised.value)
    assert kube_api.writes() == []


def test_deploy_api_error_names_service(kube_api):
    kube_api.objects[("team-faces", "faces")] = {"metadata": {"name": "faces", "generation": 1,
                                                              "resourceVersion": "9", "uid": "x"}}
    # The replace carries resourceVersion 9, but the server has moved on, so it returns 409 Conflict.
    original = kube_api.with_status

    def moved_on(stored):
        response = original(json.loads(json.dumps(stored)))
        stored["metadata"]["resourceVersion"] = "10"
        return response

    kube_api.with_status = moved_on
    with pytest.raises(KubefaceError) as raised:
        deploy(MODEL_URI, "faces", "team-faces", poll_seconds=0.01, timeout_seconds=1)
    assert "failed to update InferenceService team-faces/faces" in str(raised.value)
    assert "Conflict" in str(raised.value)
