"""The predictor end to end: `kubeface serve` on 127.0.0.1 with a model trained from the demo photos.

Requests go over real HTTP and gRPC to the child process. The server runs with small limits
(8 MiB bodies, 20 megapixels, 4 images per request) so that the limit cases stay cheap.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from kubeface.serving import annotate
from kubeface.serving.local import start_server

pytestmark = pytest.mark.slow

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 20_000_000
MAX_IMAGES = 4
LIMIT_ARGS = ["--max-body-bytes", str(MAX_BODY_BYTES), "--max-pixels", str(MAX_PIXELS),
              "--max-images", str(MAX_IMAGES)]
# Test photos of the bundled demo set, never used for training, by person (None: the first
# photo in that person's folder).
PHOTOS = {
    "Ariel_Sharon": "Ariel_Sharon/Ariel_Sharon_0013.jpg",
    "Colin_Powell": "Colin_Powell/Colin_Powell_0038.jpg",
    "Serena_Williams": None,
    "Tony_Blair": None,
}
IMAGE_SIZE = (250, 250)


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    running = start_server(trained_model, extra_args=LIMIT_ARGS, log_dir=tmp_path_factory.mktemp("serve"))
    try:
        running.wait(f"/v2/models/{running.name}/ready")
        yield running
    finally:
        exit_code = running.stop()
    assert exit_code == 0, running.log()[-4000:]


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=120) as session:
        yield session


@pytest.fixture(scope="module")
def photos(demo_root) -> dict[str, bytes]:
    """One demo test photo per person, as file bytes."""
    found = {}
    for person, relative in PHOTOS.items():
        path = demo_root / "test" / relative if relative else sorted((demo_root / "test" / person).glob("*.jpg"))[0]
        found[person] = path.read_bytes()
    return found


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def main_face(prediction: dict) -> dict:
    """Return the largest face of a prediction: the person a demo photo is about."""
    assert prediction["faces"], f"no face found: {prediction}"
    return max(prediction["faces"], key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))


def v2_predictions(body: dict) -> list[dict]:
    (output,) = body["outputs"]
    assert output["name"] == "result"
    assert output["datatype"] == "BYTES"
    return [json.loads(item) for item in output["data"]]


def to_png(jpeg: bytes) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_json_error(response: httpx.Response, status: int, phrase: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert phrase in response.json()["error"]


# Requests that must name the right people.


def test_v1_several_photos_right_names(client, server, photos):
    people = ["Ariel_Sharon", "Colin_Powell", "Serena_Williams"]
    body = {"instances": [{"image": {"b64": b64(photos[p])}} for p in people]}
    response = client.post(f"/v1/models/{server.name}:predict", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["model_name"] == server.name
    assert result["model_version"] == "1.0.0"
    assert [main_face(p)["label"] for p in result["predictions"]] == people
    for prediction in result["predictions"]:
        assert (prediction["width"], prediction["height"]) == IMAGE_SIZE
        assert set(prediction["timings_ms"]) == {"decode", "detect", "embed_classify"}


def test_v1_face_fields_within_image(client, server, photos):
    body = {"instances": [{"image": {"b64": b64(photos["Tony_Blair"])}}]}
    face = main_face(client.post(f"/v1/models/{server.name}:predict", json=body).json()["predictions"][0])
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= IMAGE_SIZE[0]
    assert 0 <= y1 < y2 <= IMAGE_SIZE[1]
    assert len(face["landmarks"]) == 5
    assert all(x1 - 5 <= x <= x2 + 5 and y1 - 5 <= y <= y2 + 5 for x, y in face["landmarks"])
    assert 0.9 <= face["score"] <= 1.0
    assert 0.0 < face["probability"] <= 1.0
    assert face["nearest"] == "Tony_Blair"
    assert 0.0 <= face["distance"] <= 2.0


def test_v2_json_base64_right_names(client, server, photos):
    body = {"id": "v2-json", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                         "data": [b64(photos["Colin_Powell"]), b64(photos["Tony_Blair"])]}]}
    response = client.post(f"/v2/models/{server.name}/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "v2-json"
    assert [main_face(p)["label"] for p in v2_predictions(response.json())] == ["Colin_Powell", "Tony_Blair"]


def test_v2_binary_data_raw_bytes(client, server, photos):
    images = [photos["Serena_Williams"], photos["Ariel_Sharon"]]
    blob = b"".join(struct.pack("<I", len(data)) + data for data in images)
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                     "parameters": {"binary_data_size": len(blob)}}]}).encode()
    response = client.post(f"/v2/models/{server.name}/infer", content=header + blob,
                           headers={"Inference-Header-Content-Length": str(len(header)),
                                    "Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert [main_face(p)["label"] for p in v2_predictions(response.json())] == ["Serena_Williams", "Ariel_Sharon"]


@pytest.mark.parametrize("route", ["v1", "v2"])
def test_raw_jpeg_body_right_name(client, server, photos, route):
    path = f"/v1/models/{server.name}:predict" if route == "v1" else f"/v2/models/{server.name}/infer"
    response = client.post(path, content=photos["Colin_Powell"], headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"] if route == "v1" else v2_predictions(response.json())
    assert main_face(predictions[0])["label"] == "Colin_Powell"


def test_raw_png_body_right_name(client, server, photos):
    response = client.post(f"/v1/models/{server.name}:predict", content=to_png(photos["Ariel_Sharon"]),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    assert main_face(response.json()["predictions"][0])["label"] == "Ariel_Sharon"


def test_grpc_raw_contents_right_names(server, photos):
    import grpc

    from kubeface.serving.kserve_import import kserve

    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    images = [photos["Tony_Blair"], photos["Colin_Powell"]]
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[2])
    request = pb.ModelInferRequest(model_name=server.name, id="grpc-raw", inputs=[tensor],
                                   raw_input_contents=[b"".join(struct.pack("<I", len(d)) + d for d in images)])
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=120)
    response = kserve.InferResponse.from_grpc(reply)
    predictions = [json.loads(item) for item in response.outputs[0].as_numpy()]
    assert reply.id == "grpc-raw"
    assert [main_face(p)["label"] for p in predictions] == ["Tony_Blair", "Colin_Powell"]


def test_grpc_bytes_contents_with_options(server, photos):
    import grpc

    from kubeface.serving.kserve_import import kserve  # noqa: F401

    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    contents = pb.InferTensorContents(bytes_contents=[photos["Serena_Williams"]])
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1], contents=contents)
    request = pb.ModelInferRequest(model_name=server.name, inputs=[tensor])
    request.parameters["annotate"].bool_param = True
    with grpc.insecure_channel(server.grpc_target) as channel:
        reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=120)
    prediction = json.loads(reply.outputs[0].contents.bytes_contents[0])
    assert main_face(prediction)["label"] == "Serena_Williams"
    assert base64.b64decode(prediction["annotated_image"]["b64"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_grpc_invalid_image_invalid_argument(server):
    import grpc

    from kubeface.serving.kserve_import import kserve  # noqa: F401

    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    contents = pb.InferTensorContents(bytes_contents=[b"\x00\x01 not an image"])
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1], contents=contents)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(pb.ModelInferRequest(model_name=server.name, inputs=[tensor]), timeout=60)
        ready = stub.ServerReady(pb.ServerReadyRequest(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'input "image"[0]: expected an image' in raised.value.details()
    assert ready.ready is True


# Options.


def test_annotated_png_original_size(client, server, photos):
    from PIL import Image

    body = {"instances": [{"image": {"b64": b64(photos["Ariel_Sharon"])}}], "parameters": {"annotate": True}}
    prediction = client.post(f"/v1/models/{server.name}:predict", json=body).json()["predictions"][0]
    annotated = prediction["annotated_image"]
    assert annotated["content_type"] == "image/png"
    image = Image.open(io.BytesIO(base64.b64decode(annotated["b64"])))
    assert image.format == "PNG"
    assert image.size == IMAGE_SIZE
    face = main_face(prediction)
    pixels = np.asarray(image.convert("RGB"))
    row = int((face["box"][1] + face["box"][3]) / 2)
    column = int(round(face["box"][0])) + annotate.line_width(pixels.shape) // 2
    assert tuple(pixels[row, column]) == annotate.KNOWN_COLOR
    assert "annotate" in prediction["timings_ms"]


def test_raw_body_annotate_from_query(client, server, photos):
    response = client.post(f"/v1/models/{server.name}:predict", params={"annotate": "true"},
                           content=photos["Colin_Powell"], headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert "annotated_image" in response.json()["predictions"][0]


def test_min_face_size_option(client, server, photos):
    def faces(min_face_size):
        body = {"instances": [{"image": {"b64": b64(photos["Tony_Blair"])}}],
                "parameters": {"min_face_size": min_face_size}}
        return client.post(f"/v1/models/{server.name}:predict", json=body).json()["predictions"][0]["faces"]

    assert len(faces(40)) >= 1
    assert faces(300) == []


# Bad input: 4xx with a JSON error naming what was wrong, and the server stays healthy.

BAD_BODIES = [
    ("v1", "application/json", b"{not json", 400, "request body is not valid JSON"),
    ("v1", "application/json", b'{"instances": "AAAA"}', 400, '"instances" must be a list of images'),
    ("v1", "application/json", b'{"instances": [{"image": {"b64": "%%%"}}]}', 400, "is not valid base64"),
    ("v1", "application/json", b'{"instances": []}', 400, '"instances" is empty'),
    ("v1", "application/json", json.dumps({"instances": [{"image": {"b64": b64(b"hello")}}]}).encode(), 400,
     "instances[0]: expected an image"),
    ("v1", "image/jpeg", b"", 400, "got 0 bytes"),
    ("v1", "image/jpeg", b"GIF89a but not really", 400, "body:"),
    ("v1", "text/plain", b"hello", 400, "request body is not valid JSON (Content-Type text/plain)"),
    ("v2", "application/json", b"{not json", 400, "request body is not valid JSON"),
    ("v2", "application/json", b'{"inputs": "x"}', 400, "invalid v2 inference request: inputs"),
    ("v2", "application/json", b'[1, 2]', 400, "must be a JSON object"),
    ("v2", "application/json", b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1], "data": [1.0]}]}',
     400, "must have datatype BYTES"),
    ("v2", "image/png", b"\x89PNG\r\n\x1a\n truncated", 400, "body:"),
]


@pytest.mark.parametrize("route, content_type, body, status, phrase", BAD_BODIES)
def test_bad_body_json_error(client, server, route, content_type, body, status, phrase):
    path = f"/v1/models/{server.name}:predict" if route == "v1" else f"/v2/models/{server.name}/infer"
    response = client.post(path, content=body, headers={"Content-Type": content_type})
    assert_json_error(response, status, phrase)


def test_truncated_jpeg_says_truncated(client, server, photos):
    response = client.post(f"/v1/models/{server.name}:predict", content=photos["Ariel_Sharon"][:3000],
                           headers={"Content-Type": "image/jpeg"})
    assert_json_error(response, 400, "truncated")


def test_binary_data_bad_framing_400(client, server, photos):
    data = photos["Ariel_Sharon"]
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(data)}}]}).encode()
    response = client.post(f"/v2/models/{server.name}/infer", content=header + data,
                           headers={"Inference-Header-Content-Length": str(len(header))})
    assert_json_error(response, 400, "each BYTES element must be a 4-byte little-endian length")


def test_oversized_body_413(client, server):
    response = client.post(f"/v1/models/{server.name}:predict", content=b"\xff" * (MAX_BODY_BYTES + 1),
                           headers={"Content-Type": "image/jpeg"})
    assert_json_error(response, 413, f"above the limit of {MAX_BODY_BYTES} bytes")


def test_oversized_chunked_body_413(client, server):
    def chunks():
        for _ in range(MAX_BODY_BYTES // (1024 * 1024) + 2):
            yield b"\xff" * (1024 * 1024)

    response = client.post(f"/v1/models/{server.name}:predict", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert_json_error(response, 413, f"request body has more than {MAX_BODY_BYTES} bytes")


def test_pixel_bomb_413(client, server):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (6000, 4000), 128).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < MAX_BODY_BYTES
    response = client.post(f"/v1/models/{server.name}:predict", content=buffer.getvalue(),
                           headers={"Content-Type": "image/png"})
    assert_json_error(response, 413, f"image is 6000x4000 = 24000000 pixels, above the limit of {MAX_PIXELS}")


def test_request_pixels_together_413(client, server):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (90, 120, 150)).save(buffer, format="PNG")
    body = {"instances": [{"image": {"b64": b64(buffer.getvalue())}}] * 2}
    response = client.post(f"/v1/models/{server.name}:predict", json=body)
    assert_json_error(response, 413, "have 24000000 pixels together, above the limit of 20000000")


def test_too_many_images_400(client, server, photos):
    body = {"instances": [{"image": {"b64": b64(photos["Ariel_Sharon"])}}] * (MAX_IMAGES + 1)}
    response = client.post(f"/v1/models/{server.name}:predict", json=body)
    assert_json_error(response, 400, f"the request has {MAX_IMAGES + 1} images, above the limit of {MAX_IMAGES}")


def test_unknown_model_404(client, photos):
    response = client.post("/v1/models/no-such-model:predict", content=photos["Ariel_Sharon"],
                           headers={"Content-Type": "image/jpeg"})
    assert_json_error(response, 404, "no-such-model")


def test_wrong_version_404(client, server, photos):
    response = client.post(f"/v2/models/{server.name}/versions/9.9.9/infer", content=photos["Ariel_Sharon"],
                           headers={"Content-Type": "image/jpeg"})
    assert_json_error(response, 404, f"model {server.name} serves version 1.0.0, not 9.9.9")


def test_awkward_photos_never_5xx(client, server, shared_data):
    files = sorted(path for path in (shared_data / "awkward").rglob("*") if path.is_file())
    assert len(files) > 40
    statuses = {}
    for path in files:
        response = client.post(f"/v1/models/{server.name}:predict", content=path.read_bytes(),
                               headers={"Content-Type": "application/octet-stream"})
        statuses[path.relative_to(shared_data).as_posix()] = response.status_code
        assert response.status_code == 200 or 400 <= response.status_code < 500, (path, response.text)
        body = response.json()
        if response.status_code != 200:
            assert body["error"].startswith("body: ")
    images = [name for name in statuses if name.endswith((".jpg", ".png", ".pgm"))]
    assert all(statuses[name] == 200 for name in images), statuses
    assert statuses["awkward/tiny_face/skimage_lfw_subset.npy"] == 400
    assert client.get("/v2/health/ready").status_code == 200


def test_server_healthy_after_bad_input(client, server):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get(f"/v2/models/{server.name}/ready").status_code == 200


# Concurrency, naming and start-up settings.


def test_readiness_answers_during_large_photo(server, photos):
    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(photos["Ariel_Sharon"])).resize((4000, 4000)).save(buffer, format="JPEG", quality=90)
    done = threading.Event()
    outcome = {}

    def predict():
        with httpx.Client(timeout=300) as session:
            outcome["response"] = session.post(server.predict_url, content=buffer.getvalue(),
                                               headers={"Content-Type": "image/jpeg"})
        done.set()

    worker = threading.Thread(target=predict)
    answered_during = []
    with httpx.Client(base_url=server.url, timeout=10) as session:
        worker.start()
        while not done.is_set():
            status = session.get("/v2/health/ready").status_code
            if not done.is_set():
                answered_during.append(status)
        worker.join()
    assert outcome["response"].status_code == 200
    assert main_face(outcome["response"].json()["predictions"][0])["label"] == "Ariel_Sharon"
    assert len(answered_during) >= 1
    assert set(answered_during) == {200}


def test_served_name_is_catalog_name(client, server, trained_model):
    assert client.get("/v1/models").json() == {"models": ["facenet-classifier"]}
    assert server.name == trained_model.rstrip("/").split("/")[-2]


def test_v2_metadata_input_output(client, server):
    metadata = client.get(f"/v2/models/{server.name}").json()
    assert metadata["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert metadata["outputs"] == [{"name": "result", "datatype": "BYTES", "shape": [-1]}]


def test_settings_logged_at_start(server):
    from kubeface import runtime

    log = server.log()
    assert f"OpenVINO: {runtime.inference_threads()} inference threads" in log
    assert f"max_body_bytes={MAX_BODY_BYTES} max_pixels={MAX_PIXELS} max_images={MAX_IMAGES}" in log
    assert "model facenet-classifier version 1.0.0 ready" in log


def test_cli_predict_names_and_annotates(server, demo_root, tmp_path):
    from PIL import Image

    paths = [demo_root / "test" / PHOTOS["Ariel_Sharon"], demo_root / "test" / PHOTOS["Colin_Powell"]]
    result = subprocess.run(
        [sys.executable, "-m", "kubeface.cli", "predict", *map(str, paths), "--url", server.url,
         "--annotate", str(tmp_path / "out.png")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"{paths[0]}: Ariel_Sharon (")
    assert lines[1].startswith(f"{paths[1]}: Colin_Powell (")
    for index in (1, 2):
        with Image.open(tmp_path / f"out-{index}.png") as image:
            assert image.format == "PNG"
            assert image.size == IMAGE_SIZE


def test_cli_predict_json_reports_bad_file(server, demo_root, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a photo")
    good = demo_root / "test" / PHOTOS["Colin_Powell"]
    result = subprocess.run(
        [sys.executable, "-m", "kubeface.cli", "predict", str(bad), str(good), "--url", server.predict_url, "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    first, second = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert first["image"] == str(bad)
    assert "returned HTTP 400" in first["error"]
    assert "expected an image" in first["error"]
    assert main_face(second)["label"] == "Colin_Powell"


# A damaged model: the server is live but not ready, and every response gives the reason.


@pytest.fixture(scope="module")
def broken_server(trained_model, tmp_path_factory):
    import shutil

    from kubeface.catalog import resolve_model

    copy = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(resolve_model(trained_model), copy)
    weights = copy / "ir" / "facenet.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    running = start_server(str(copy), log_dir=tmp_path_factory.mktemp("serve-broken"))
    try:
        # A server still loading returns 503 too; wait until the load has failed.
        deadline = time.monotonic() + 180
        while "still loading" in httpx.get(f"{running.url}/v2/models/{running.name}/ready").text:
            assert time.monotonic() < deadline, running.log()[-4000:]
            time.sleep(0.2)
        yield running
    finally:
        running.stop()


def test_damaged_model_not_ready_names_file(broken_server):
    with httpx.Client(base_url=broken_server.url, timeout=30) as session:
        live = session.get("/v2/health/live")
        server_ready = session.get("/v2/health/ready")
        model_ready = session.get(f"/v2/models/{broken_server.name}/ready")
    assert live.status_code == 200
    for response in (server_ready, model_ready):
        assert response.status_code == 503
        assert "ChecksumError" in response.json()["error"]
        assert "ir/facenet.bin has sha256" in response.json()["error"]


def test_damaged_model_predict_503_with_reason(broken_server, photos):
    with httpx.Client(timeout=30) as session:
        response = session.post(broken_server.predict_url, content=photos["Ariel_Sharon"],
                                headers={"Content-Type": "image/jpeg"})
    assert_json_error(response, 503, "ir/facenet.bin has sha256")


def test_damaged_model_grpc_unavailable(broken_server, photos):
    import grpc

    from kubeface.serving.kserve_import import kserve  # noqa: F401

    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    contents = pb.InferTensorContents(bytes_contents=[photos["Ariel_Sharon"]])
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1], contents=contents)
    with grpc.insecure_channel(broken_server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        ready = stub.ServerReady(pb.ServerReadyRequest(), timeout=10)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ModelInfer(pb.ModelInferRequest(model_name=broken_server.name, inputs=[tensor]), timeout=30)
    assert ready.ready is False
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "ir/facenet.bin has sha256" in raised.value.details()


def test_stop_while_loading_exits_cleanly(trained_model):
    # SIGTERM as soon as the server is live, while the model is still loading in the background.
    running = start_server(trained_model)
    exit_code = running.stop(timeout=120)
    assert exit_code == 0, running.log()[-4000:]
    assert "terminate called" not in running.log()
