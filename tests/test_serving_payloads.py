"""The predictor's request parser: every accepted form, and the error each malformed one gets."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from kubeface.errors import InvalidInputError
from kubeface.serving import payloads
from kubeface.serving.payloads import Options

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01 not a whole JPEG \x00\xff"
PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def length_prefixed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def binary_body(spec: dict, blob: bytes) -> tuple[bytes, str]:
    header = json.dumps(spec).encode()
    return header + blob, str(len(header))


def test_v1_two_images_in_order():
    request = payloads.parse_v1({"instances": [{"image": {"b64": b64(JPEG_HEAD)}}, {"image": {"b64": b64(PNG_HEAD)}}]})
    assert request.images == [JPEG_HEAD, PNG_HEAD]
    assert request.labels == ["instances[0]", "instances[1]"]
    assert request.options == Options(annotate=False, min_face_size=None)
    assert request.protocol == payloads.PROTOCOL_V1


def test_v1_options_from_parameters():
    body = {"instances": [{"image": {"b64": b64(JPEG_HEAD)}}], "parameters": {"annotate": True, "min_face_size": 40}}
    assert payloads.parse_v1(body).options == Options(annotate=True, min_face_size=40)


@pytest.mark.parametrize("text", [
    b64(JPEG_HEAD),
    "\n".join(b64(JPEG_HEAD)[i : i + 8] for i in range(0, len(b64(JPEG_HEAD)), 8)),
    b64(JPEG_HEAD).rstrip("="),
    base64.urlsafe_b64encode(JPEG_HEAD).decode(),
    "data:image/jpeg;base64," + b64(JPEG_HEAD),
])
def test_base64_variants_decode_to_same_bytes(text):
    assert payloads.decode_base64(text, "x") == JPEG_HEAD


@pytest.mark.parametrize("body, message", [
    ([1, 2], "expected a JSON object such as"),
    ({}, '"instances" must be a list of images'),
    ({"instances": {"image": {}}}, "it is a JSON object"),
    ({"instances": []}, '"instances" is empty'),
    ({"instances": [{"b64": "AAAA"}]}, 'instances[0] must be {"image": {"b64": "<base64>"}}'),
    ({"instances": [{"image": "AAAA"}]}, 'instances[0].image must be {"b64": "<base64>"}; got a JSON string'),
    ({"instances": [{"image": {"b64": 12}}]}, "instances[0].image.b64 must be a base64 string; got number"),
    ({"instances": [{"image": {"b64": "@@@@"}}]}, "instances[0].image.b64 is not valid base64"),
    ({"instances": [{"image": {"b64": "data:image/png,abc"}}]}, "is a data URL without base64 data"),
    ({"inputs": []}, "unknown field inputs in the request"),
    ({"instances": [{"image": {"b64": "AAAA"}}], "parameters": []}, "parameters must be an object"),
    ({"instances": [{"image": {"b64": "AAAA"}}], "parameters": {"anotate": True}},
     "unknown option anotate in parameters; accepted options: annotate, min_face_size"),
])
def test_v1_malformed_body_names_problem(body, message):
    with pytest.raises(InvalidInputError) as raised:
        payloads.parse_v1(body)
    assert message in str(raised.value)
    assert raised.value.status_code == 400


@pytest.mark.parametrize("parameters, expected", [
    ({"annotate": "true"}, Options(annotate=True)),
    ({"annotate": "0"}, Options(annotate=False)),
    ({"annotate": 1}, Options(annotate=True)),
    ({"min_face_size": "40"}, Options(min_face_size=40)),
    ({"min_face_size": 12.0}, Options(min_face_size=12)),
    ({"binary_data_output": True}, Options()),
])
def test_options_accept_query_and_json_forms(parameters, expected):
    assert payloads.parse_options(parameters, "parameters") == expected


@pytest.mark.parametrize("parameters, message", [
    ({"annotate": "maybe"}, "parameters.annotate must be true or false; got 'maybe'"),
    ({"annotate": 2}, "parameters.annotate must be true or false; got 2"),
    ({"min_face_size": 11}, "from 12 to 100000; got 11"),
    ({"min_face_size": True}, "got True"),
    ({"min_face_size": 20.5}, "got 20.5"),
    ({"min_face_size": "-40"}, "got '-40'"),
])
def test_options_reject_invalid_values(parameters, message):
    with pytest.raises(InvalidInputError) as raised:
        payloads.parse_options(parameters, "parameters")
    assert message in str(raised.value)


def test_json_body_error_says_content_type():
    with pytest.raises(InvalidInputError) as raised:
        payloads.parse_json_body(b"{bad", "text/plain")
    assert "request body is not valid JSON (Content-Type text/plain)" in str(raised.value)


@pytest.mark.parametrize("content_type, expected", [
    ("image/jpeg", True), ("IMAGE/PNG; q=1", True), ("application/octet-stream", True),
    ("application/json", False), ("application/json; charset=utf-8", False), (None, False),
])
def test_raw_image_content_types(content_type, expected):
    assert payloads.is_raw_image_type(content_type) is expected


def test_raw_body_options_from_query():
    request = payloads.parse_raw(JPEG_HEAD, {"annotate": "yes", "min_face_size": "30"}, payloads.PROTOCOL_V2)
    assert request.images == [JPEG_HEAD]
    assert request.labels == ["body"]
    assert request.options == Options(annotate=True, min_face_size=30)
    assert request.protocol == payloads.PROTOCOL_V2


def test_binary_extension_keeps_non_utf8_bytes():
    blob = length_prefixed(JPEG_HEAD, PNG_HEAD)
    spec = {"id": "r1", "parameters": {"annotate": True},
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(blob)}}]}
    body, header_length = binary_body(spec, blob)
    request = payloads.parse_binary_request(body, header_length)
    assert request.images == [JPEG_HEAD, PNG_HEAD]
    assert request.labels == ['input "image"[0]', 'input "image"[1]']
    assert request.request_id == "r1"
    assert request.options == Options(annotate=True)
    assert request.protocol == payloads.PROTOCOL_V2


def test_binary_extension_json_data_inline():
    spec = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(PNG_HEAD)]}]}
    body, header_length = binary_body(spec, b"")
    assert payloads.parse_binary_request(body, header_length).images == [PNG_HEAD]


@pytest.mark.parametrize("blob, size, header_length, message", [
    (length_prefixed(JPEG_HEAD), None, "abc", "Inference-Header-Content-Length must be a whole number of bytes"),
    (length_prefixed(JPEG_HEAD), None, "100000", "Inference-Header-Content-Length is 100000 but the body has"),
    (length_prefixed(JPEG_HEAD), 10_000, None, "declares binary_data_size 10000 but only"),
    (length_prefixed(JPEG_HEAD)[:-3], None, None, f"element 0 declares {len(JPEG_HEAD)} bytes but only {len(JPEG_HEAD) - 3} remain"),
    (b"\x05\x00", None, None, "binary data ends inside an element's 4-byte length at byte 0"),
    (JPEG_HEAD, None, None, "declares"),
])
def test_binary_extension_framing_errors(blob, size, header_length, message):
    spec = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "parameters": {"binary_data_size": len(blob) if size is None else size}}]}
    body, length = binary_body(spec, blob)
    with pytest.raises(InvalidInputError) as raised:
        payloads.parse_binary_request(body, header_length or length)
    assert message in str(raised.value)


def test_binary_extension_trailing_bytes_rejected():
    blob = length_prefixed(JPEG_HEAD)
    spec = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(blob)}}]}
    body, header_length = binary_body(spec, blob + b"extra")
    with pytest.raises(InvalidInputError) as raised:
        payloads.parse_binary_request(body, header_length)
    assert "5 bytes follow the last input's binary data" in str(raised.value)


def test_binary_header_not_json():
    with pytest.raises(InvalidInputError) as raised:
        payloads.parse_binary_request(b"{nope" + JPEG_HEAD, "5")
    assert "the JSON header (first 5 bytes of the body) is not valid JSON" in str(raised.value)


def _infer_request(tensors, parameters=None, from_grpc=False):
    return payloads._PlainInferRequest(inputs=tensors, parameters=parameters, id="", from_grpc=from_grpc)


def test_grpc_bytes_elements_raw_or_base64():
    tensor = payloads._PlainInput(name="image", datatype="BYTES", shape=[2],
                                  data=[JPEG_HEAD, b64(PNG_HEAD).encode()], _raw_data=None)
    request = payloads.parse_infer_request(_infer_request([tensor], from_grpc=True))
    assert request.images == [JPEG_HEAD, PNG_HEAD]
    assert request.protocol == payloads.PROTOCOL_GRPC
    assert request.request_id is None


def test_grpc_parameter_messages_become_options():
    from kubeface.serving.kserve_import import kserve  # noqa: F401

    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    message = pb.ModelInferRequest()
    message.parameters["annotate"].bool_param = True
    message.parameters["min_face_size"].int64_param = 24
    tensor = payloads._PlainInput(name="image", datatype="BYTES", shape=[1], data=None,
                                  _raw_data=length_prefixed(JPEG_HEAD))
    request = payloads.parse_infer_request(_infer_request([tensor], message.parameters, from_grpc=True))
    assert request.options == Options(annotate=True, min_face_size=24)
    assert request.images == [JPEG_HEAD]


@pytest.mark.parametrize("tensors, message", [
    ([], 'the request has no inputs; send one BYTES input named "image"'),
    ([payloads._PlainInput("image", "FP32", [1], [1.0], None)], 'input "image" must have datatype BYTES'),
    ([payloads._PlainInput("image", "BYTES", [3], ["AAAA"], None)], 'input "image" has shape [3] but contains 1'),
    ([payloads._PlainInput("image", "BYTES", [0], [], None)], 'input "image" contains no image'),
    ([payloads._PlainInput("a", "BYTES", [1], ["AAAA"], None), payloads._PlainInput("b", "BYTES", [1], ["AAAA"], None)],
     'expected one BYTES input named "image"; got inputs a, b'),
    ([payloads._PlainInput("image", "BYTES", [1], [7], None)], 'input "image"[0] must be a base64 string or bytes'),
])
def test_v2_tensor_errors(tensors, message):
    with pytest.raises(InvalidInputError) as raised:
        payloads.parse_infer_request(_infer_request(tensors))
    assert message in str(raised.value)


def test_v2_nested_data_flattened():
    tensor = payloads._PlainInput("image", "BYTES", [2, 1], [[b64(JPEG_HEAD)], [b64(PNG_HEAD)]], None)
    assert payloads.parse_infer_request(_infer_request([tensor])).images == [JPEG_HEAD, PNG_HEAD]


def test_binary_data_output_parameter_sets_binary_outputs():
    tensor = payloads._PlainInput("image", "BYTES", [1], [b64(JPEG_HEAD)], None)
    request = payloads.parse_infer_request(_infer_request([tensor], {"binary_data_output": True}))
    assert request.binary_outputs is True
