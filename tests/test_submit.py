"""`kubeface submit` against a stand-in for the KFP API server.

No Kubeflow cluster can run here, so a small HTTP server on 127.0.0.1 responds to the KFP v2beta1
calls the SDK client makes (healthz, experiments, runs) and records each request. The tests
check what the real client sends: the compiled pipeline spec, the platform spec with the secret,
and the typed parameters.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kubeface.pipelines.training import COMPILED_YAML

from kubeface import cli
from kubeface.cli_kubeflow import TOKEN_ENV, parse_params
from kubeface.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[1]
RUN_ID = "7c1f0f4e-2b1d-4c55-9a57-0d6f8f0e1a11"
EXPERIMENT_ID = "0a8e3c7d-5f62-4b0e-8d44-6f3c2b9e7d10"


class RecordingKfpApi(BaseHTTPRequestHandler):
    """Respond to the KFP v2beta1 calls of kfp.Client and record every request."""

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def _record(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        url = urlsplit(self.path)
        entry = {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body,
                 "authorization": self.headers.get("Authorization")}
        self.server.requests.append(entry)
        return entry

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        entry = self._record()
        if entry["path"] == "/apis/v2beta1/healthz":
            self._reply(200, {"multi_user": False})
        elif entry["path"] == "/apis/v2beta1/experiments":
            self._reply(200, {"experiments": self.server.experiments, "total_size": len(self.server.experiments)})
        else:
            self._reply(404, {"error": f"no route {entry['path']}", "code": 5})

    def do_POST(self):
        entry = self._record()
        if self.server.reject_with:
            self._reply(self.server.reject_with, {"error": "denied", "code": 7})
        elif entry["path"] == "/apis/v2beta1/experiments":
            experiment = {"experiment_id": EXPERIMENT_ID, **entry["body"]}
            self.server.experiments.append(experiment)
            self._reply(200, experiment)
        elif entry["path"] == "/apis/v2beta1/runs":
            self._reply(200, {"run_id": RUN_ID, "display_name": entry["body"]["display_name"],
                              "experiment_id": entry["body"]["experiment_id"], "state": "PENDING"})
        else:
            self._reply(404, {"error": f"no route {entry['path']}", "code": 5})


@pytest.fixture
def kfp_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingKfpApi)
    server.requests, server.experiments, server.reject_with = [], [], 0
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def no_token(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def checked_in_documents() -> list[dict]:
    with open(REPO / "pipelines" / COMPILED_YAML.name, encoding="utf-8") as stream:
        return list(yaml.safe_load_all(stream))


def run_request(server) -> dict:
    (request,) = [r for r in server.requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"]
    return request


def test_submit_sends_spec_and_parameters(kfp_api, no_token, capsys):
    code = cli.main(["submit", "--host", kfp_api.url, "--experiment", "faces", "--run-name", "staff 1.0.0",
                     "--param", "dataset_uri=s3://faces/datasets/staff/1.0.0",
                     "--param", "store_uri=s3://faces", "--param", "shards=3", "--param", "deploy=true",
                     "--param", "min_accuracy=0.95", "--param", "canary_traffic_percent=10"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"run id: {RUN_ID}", f"run url: {kfp_api.url}/#/runs/details/{RUN_ID}"]

    body = run_request(kfp_api)["body"]
    assert body["display_name"] == "staff 1.0.0"
    assert body["experiment_id"] == EXPERIMENT_ID
    assert body["runtime_config"]["parameters"] == {
        "dataset_uri": "s3://faces/datasets/staff/1.0.0", "store_uri": "s3://faces", "shards": 3,
        "deploy": True, "min_accuracy": 0.95, "canary_traffic_percent": 10,
    }
    pipeline_spec, platform_spec = checked_in_documents()
    assert body["pipeline_spec"]["pipeline_spec"] == pipeline_spec
    assert body["pipeline_spec"]["platform_spec"] == platform_spec


def test_submit_creates_missing_experiment(kfp_api, no_token):
    cli.main(["submit", "--host", kfp_api.url, "--experiment", "faces", "--param", "dataset_uri=s3://f/d"])
    posts = [r for r in kfp_api.requests if r["method"] == "POST"]
    assert [r["path"] for r in posts] == ["/apis/v2beta1/experiments", "/apis/v2beta1/runs"]
    assert posts[0]["body"]["display_name"] == "faces"
    lookup = [r for r in kfp_api.requests if r["method"] == "GET" and r["path"] == "/apis/v2beta1/experiments"]
    (query_filter,) = lookup[0]["query"]["filter"]
    assert json.loads(query_filter)["predicates"][0]["stringValue"] == "faces"


def test_submit_reuses_experiment(kfp_api, no_token):
    kfp_api.experiments.append({"experiment_id": EXPERIMENT_ID, "display_name": "faces"})
    cli.main(["submit", "--host", kfp_api.url, "--experiment", "faces", "--param", "dataset_uri=s3://f/d"])
    posts = [r["path"] for r in kfp_api.requests if r["method"] == "POST"]
    assert posts == ["/apis/v2beta1/runs"]
    assert run_request(kfp_api)["body"]["experiment_id"] == EXPERIMENT_ID


def test_submit_namespace_and_root(kfp_api, no_token):
    cli.main(["submit", "--host", kfp_api.url, "--namespace", "team-faces", "--param", "dataset_uri=s3://f/d",
              "--pipeline-root", "s3://faces/runs", "--service-account", "pipeline-runner"])
    experiment = [r for r in kfp_api.requests if r["path"] == "/apis/v2beta1/experiments" and r["method"] == "POST"]
    assert experiment[0]["body"]["namespace"] == "team-faces"
    body = run_request(kfp_api)["body"]
    assert body["runtime_config"]["pipeline_root"] == "s3://faces/runs"
    assert body["service_account"] == "pipeline-runner"
    # With a namespace given, the client does not need healthz to find a multi-user server's namespace.
    assert "/apis/v2beta1/healthz" not in [r["path"] for r in kfp_api.requests]


def test_submit_sends_token_header(kfp_api, monkeypatch, capsys):
    token = "kubeface-test-token-5d2a"
    monkeypatch.setenv(TOKEN_ENV, token)
    cli.main(["--log-level", "DEBUG", "submit", "--host", kfp_api.url, "--param", "dataset_uri=s3://f/d"])
    assert {r["authorization"] for r in kfp_api.requests} == {f"Bearer {token}"}
    captured = capsys.readouterr()
    assert token not in captured.out
    assert token not in captured.err


def test_submit_rejected_names_status(kfp_api, no_token, capsys):
    kfp_api.reject_with = 403
    code = cli.main(["submit", "--host", kfp_api.url, "--param", "dataset_uri=s3://f/d"])
    assert code == 2
    error = capsys.readouterr().err
    assert f"KFP API at {kfp_api.url} rejected the request: HTTP 403" in error
    assert TOKEN_ENV in error


def test_submit_unknown_parameter(kfp_api, no_token, capsys):
    code = cli.main(["submit", "--host", kfp_api.url, "--param", "dataset_uri=s3://f/d", "--param", "shard=2"])
    assert code == 2
    assert "unknown pipeline parameter 'shard'" in capsys.readouterr().err
    assert kfp_api.requests == []


@pytest.mark.parametrize("items, message", [
    (["shards=2"], "missing required pipeline parameter(s): dataset_uri"),
    (["dataset_uri=x", "shards=two"], "parameter shards must be an integer; got 'two'"),
    (["dataset_uri=x", "min_accuracy=high"], "parameter min_accuracy must be a number; got 'high'"),
    (["dataset_uri=x", "deploy=maybe"], "parameter deploy must be true or false; got 'maybe'"),
    (["dataset_uri"], "--param expects KEY=VALUE; got 'dataset_uri'"),
    (["dataset_uri=x", "shards=0"], "pipeline parameter shards=0 is out of range: expected >= 1"),
    (["dataset_uri=x", "min_accuracy=5"], "pipeline parameter min_accuracy=5.0 is out of range: expected [0.0, 1.0]"),
    (["dataset_uri=x", "target_far=1"], "pipeline parameter target_far=1.0 is out of range: expected [0.0, 1.0)"),
    (["dataset_uri=x", "image_size=16"], "pipeline parameter image_size=16 is out of range: expected [32, 1024]"),
])
def test_parse_params_rejects(items, message):
    spec = checked_in_documents()[0]
    with pytest.raises(InvalidInputError) as raised:
        parse_params(items, spec)
    assert message in str(raised.value)


def test_parse_params_types():
    spec = checked_in_documents()[0]
    arguments = parse_params(["dataset_uri=s3://a=b/c", "deploy=0", "margin=40", "min_accuracy=1",
                              "isvc_name=faces"], spec)
    assert arguments == {"dataset_uri": "s3://a=b/c", "deploy": False, "margin": 40, "min_accuracy": 1.0,
                         "isvc_name": "faces"}
    assert type(arguments["min_accuracy"]) is float


def test_submit_unreachable_host(no_token, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingKfpApi)
    port = server.server_address[1]
    server.server_close()
    code = cli.main(["submit", "--host", f"http://127.0.0.1:{port}", "--namespace", "team",
                     "--param", "dataset_uri=s3://f/d"])
    assert code == 2
    assert f"failed to reach the KFP API at http://127.0.0.1:{port}" in capsys.readouterr().err
