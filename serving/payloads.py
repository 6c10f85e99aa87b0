"""Parse prediction requests of every accepted form into encoded images and options.

Accepted forms:

- v1 JSON: ``{"instances": [{"image": {"b64": "..."}}, ...], "parameters": {...}}``.
- v2 JSON (open inference protocol): one BYTES input, named "image", with one base64 string
  per image; options in the request's "parameters".
- v2 binary data extension: the same input with its elements after the JSON header, each a
  4-byte little-endian length followed by the image file.
- A raw body with Content-Type image/* or application/octet-stream; options in the query string.
- gRPC v2: one BYTES input whose elements are image files, in raw_input_contents or
  contents.bytes_contents; elements that are base64 text are decoded first.

Base64 text may be wrapped over several lines, use the URL-safe alphabet, lack its padding or
be a data URL (``data:image/jpeg;base64,...``). Every error is an InvalidInputError (400) whose
message names the offending field.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import re
import struct
from collections.abc import Mapping

import orjson

from kubeface.detect import PNET_CELL
from kubeface.errors import InvalidInputError

PROTOCOL_V1 = "v1"
PROTOCOL_V2 = "v2"
PROTOCOL_GRPC = "grpc"
INPUT_NAME = "image"
OUTPUT_NAME = "result"
OPTION_NAMES = ("annotate", "min_face_size")
# Protocol-level request parameters that carry no option of ours and are accepted silently.
PROTOCOL_PARAMETERS = frozenset({"binary_data_output"})
MAX_MIN_FACE_SIZE = 100_000
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/=\-_\s]+$")
V1_EXAMPLE = '{"instances": [{"image": {"b64": "<base64 of a JPEG or PNG file>"}}]}'


@dataclasses.dataclass(frozen=True)
class Options:
    """Per-request options."""

    annotate: bool = False
    """Return each image with boxes and names drawn on it, as a base64 PNG."""
    min_face_size: int | None = None
    """Smallest face to find, in pixels of the original image; None keeps the detector's default."""


@dataclasses.dataclass
class ImageRequest:
    """The encoded images of one request, with its options and the protocol of its response."""

    images: list[bytes]
    labels: list[str]
    """Origin of each image in the request ("instances[0]", "body"), used in error messages."""
    options: Options
    protocol: str
    request_id: str | None = None
    binary_outputs: bool = False
    """Whether the response uses the binary data extension (the "binary_data_output" parameter)."""


def parse_options(parameters, where: str) -> Options:
    """Read annotate and min_face_size from a JSON object, query string or gRPC parameter map."""
    if parameters is None:
        return Options()
    if not isinstance(parameters, Mapping):
        raise InvalidInputError(
            f"{where} must be an object such as {{\"annotate\": true, \"min_face_size\": 40}}; "
            f"got {_json_type(parameters)}"
        )
    unknown = sorted(str(key) for key in parameters if key not in OPTION_NAMES and key not in PROTOCOL_PARAMETERS)
    if unknown:
        raise InvalidInputError(
            f"unknown option {', '.join(unknown)} in {where}; accepted options: {', '.join(OPTION_NAMES)}"
        )
    annotate = parameters.get("annotate")
    min_face_size = parameters.get("min_face_size")
    return Options(
        annotate=False if annotate is None else _parse_bool(annotate, f"{where}.annotate"),
        min_face_size=None if min_face_size is None else _parse_face_size(min_face_size, f"{where}.min_face_size"),
    )


def _parse_bool(value, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise InvalidInputError(f"{where} must be true or false; got {value!r}")


def _parse_face_size(value, where: str) -> int:
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not PNET_CELL <= number <= MAX_MIN_FACE_SIZE:
        raise InvalidInputError(
            f"{where} must be a whole number of pixels from {PNET_CELL} to {MAX_MIN_FACE_SIZE}; got {value!r}"
        )
    return number


def decode_base64(text, where: str) -> bytes:
    """Decode base64 text (standard or URL-safe alphabet, padding optional, or a data URL)."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{where} must be a base64 string; got {_json_type(text)}")
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise InvalidInputError(f"{where} is a data URL without base64 data; expected data:image/jpeg;base64,...")
    compact = "".join(text.split())
    if "-" in compact or "_" in compact:
        compact = compact.replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except ValueError as error:
        raise InvalidInputError(f"{where} is not valid base64 ({len(text)} characters): {error}") from error


def parse_v1(body) -> ImageRequest:
    """Parse a decoded v1 JSON body."""
    if not isinstance(body, Mapping):
        raise InvalidInputError(f"expected a JSON object such as {V1_EXAMPLE}; got {_json_type(body)}")
    unknown = sorted(str(key) for key in body if key not in ("instances", "parameters"))
    if unknown:
        raise InvalidInputError(
            f"unknown field {', '.join(unknown)} in the request; expected {V1_EXAMPLE}, with options in "
            '"parameters"'
        )
    instances = body.get("instances")
    if not isinstance(instances, list):
        what = "missing" if instances is None else f"a JSON {_json_type(instances)}"
        raise InvalidInputError(f'"instances" must be a list of images such as {V1_EXAMPLE}; it is {what}')
    if not instances:
        raise InvalidInputError(f'"instances" is empty; send at least one image: {V1_EXAMPLE}')
    images, labels = [], []
    for index, instance in enumerate(instances):
        where = f"instances[{index}]"
        images.append(_v1_image(instance, where))
        labels.append(where)
    options = parse_options(body.get("parameters"), "parameters")
    return ImageRequest(images=images, labels=labels, options=options, protocol=PROTOCOL_V1)


def _v1_image(instance, where: str) -> bytes:
    if not isinstance(instance, Mapping) or set(instance) != {"image"}:
        raise InvalidInputError(f'{where} must be {{"image": {{"b64": "<base64>"}}}}; got {_describe(instance)}')
    image = instance["image"]
    if not isinstance(image, Mapping) or set(image) != {"b64"}:
        raise InvalidInputError(f'{where}.image must be {{"b64": "<base64>"}}; got {_describe(image)}')
    return decode_base64(image["b64"], f"{where}.image.b64")


def parse_json_body(body: bytes, content_type: str | None):
    """Decode a JSON request body, or raise an InvalidInputError explaining why it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        received = f" (Content-Type {content_type})" if content_type else ""
        raise InvalidInputError(
            f"request body is not valid JSON{received}: {error}; send JSON such as {V1_EXAMPLE}, "
            "or the image itself with Content-Type image/jpeg or image/png"
        ) from error


def is_raw_image_type(content_type: str | None) -> bool:
    """Return whether a Content-Type announces a bare image body rather than JSON."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type.startswith("image/") or media_type == "application/octet-stream"


def parse_raw(body: bytes, query: Mapping[str, str], protocol: str) -> ImageRequest:
    """Wrap a bare image body; options come from the query string (?annotate=true&min_face_size=40)."""
    return ImageRequest(images=[bytes(body)], labels=["body"], options=parse_options(query, "query string"),
                        protocol=protocol)


def parse_infer_request(request) -> ImageRequest:
    """Parse a kserve InferRequest decoded from v2 JSON or gRPC.

    gRPC elements are bytes (an image file, or its base64 text); JSON elements are base64 strings.
    """
    protocol = PROTOCOL_GRPC if request.from_grpc else PROTOCOL_V2
    tensor = _image_input(request.inputs)
    where = f'input "{tensor.name}"'
    if tensor.datatype != "BYTES":
        raise InvalidInputError(
            f"{where} must have datatype BYTES, one encoded image file per element; got {tensor.datatype}"
        )
    raw = getattr(tensor, "_raw_data", None)
    elements = split_length_prefixed(raw, where) if raw is not None else _flatten(tensor.data)
    _check_shape(tensor.shape, len(elements), where)
    if not elements:
        raise InvalidInputError(f"{where} contains no image; send at least one")
    images, labels = [], []
    for index, element in enumerate(elements):
        label = f"{where}[{index}]"
        images.append(_element_bytes(element, label))
        labels.append(label)
    parameters = _plain_parameters(request.parameters)
    options = parse_options(parameters, "parameters")
    # kserve's InferRequest computes whether the response is binary: raw outputs for gRPC requests with
    # raw inputs, the binary data extension for REST requests that set binary_data_output.
    binary_outputs = getattr(request, "use_binary_outputs", None)
    if binary_outputs is None:
        binary_outputs = bool((parameters or {}).get("binary_data_output"))
    return ImageRequest(
        images=images, labels=labels, options=options, protocol=protocol,
        request_id=_request_id(request.id), binary_outputs=bool(binary_outputs),
    )


def _request_id(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f'the request "id" must be a string; got {_json_type(value)}')
    return value


def _image_input(inputs):
    if not inputs:
        raise InvalidInputError(f'the request has no inputs; send one BYTES input named "{INPUT_NAME}"')
    if len(inputs) > 1:
        raise InvalidInputError(
            f'expected one BYTES input named "{INPUT_NAME}"; got inputs {", ".join(t.name for t in inputs)}'
        )
    return inputs[0]


def _element_bytes(element, where: str) -> bytes:
    if isinstance(element, str):
        return decode_base64(element, where)
    if isinstance(element, (bytes, bytearray, memoryview)):
        data = bytes(element)
        # Image files are binary, so bytes made only of base64 characters are base64 text.
        if data and BASE64_TEXT.match(data):
            return decode_base64(data.decode("ascii"), where)
        return data
    raise InvalidInputError(f"{where} must be a base64 string or bytes; got {_json_type(element)}")


def _flatten(data) -> list:
    if data is None:
        return []
    if not isinstance(data, (list, tuple)):
        return [data]
    flat = []
    for item in data:
        flat.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return flat


def _check_shape(shape, count: int, where: str) -> None:
    if shape is not None and not isinstance(shape, (list, tuple)):
        raise InvalidInputError(f"{where} must have a shape list such as [{count}]; got {_json_type(shape)}")
    dims = list(shape or [])
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in dims) or math.prod(dims) != count:
        raise InvalidInputError(f"{where} has shape {dims} but contains {count} elements; use shape [{count}]")


def _plain_parameters(parameters):
    """Turn gRPC InferParameter messages into plain values; other mappings pass unchanged.

    A value that is not a mapping is returned as it is, for parse_options to reject.
    """
    if parameters is None or not hasattr(parameters, "items"):
        return parameters
    plain = {}
    for key, value in parameters.items():
        field = value.WhichOneof("parameter_choice") if hasattr(value, "WhichOneof") else None
        plain[key] = getattr(value, field) if field else value
    return plain


def split_length_prefixed(data: bytes, where: str) -> list[bytes]:
    """Split BYTES tensor data in Triton's binary form: per element a uint32 LE length, then the bytes."""
    data = bytes(data)
    elements, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise InvalidInputError(
                f"{where}: binary data ends inside an element's 4-byte length at byte {offset}; each BYTES "
                "element must be a 4-byte little-endian length followed by that many bytes"
            )
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise InvalidInputError(
                f"{where}: element {len(elements)} declares {length} bytes but only {len(data) - offset} "
                "remain; each BYTES element must be a 4-byte little-endian length followed by that many bytes"
            )
        elements.append(data[offset : offset + length])
        offset += length
    return elements


def parse_binary_request(body: bytes, header_length: str) -> ImageRequest:
    """Parse a v2 request sent with the binary data extension.

    The body is a JSON header of header_length bytes (the Inference-Header-Content-Length
    header), then the binary data of each input that declares parameters.binary_data_size.
    """
    try:
        json_length = int(header_length)
    except ValueError as error:
        raise InvalidInputError(
            f"Inference-Header-Content-Length must be a whole number of bytes; got {header_length!r}"
        ) from error
    if not 0 < json_length <= len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length is {json_length} but the body has {len(body)} bytes; it must "
            "give the length of the JSON header at the start of the body"
        )
    try:
        header = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(f"the JSON header (first {json_length} bytes of the body) is not valid JSON: {error}") from error
    if not isinstance(header, Mapping) or not isinstance(header.get("inputs"), list):
        raise InvalidInputError('the JSON header must be an object with an "inputs" list')
    offset = json_length
    tensors = []
    for spec in header["inputs"]:
        tensor, offset = _binary_input(spec, body, offset)
        tensors.append(tensor)
    if offset != len(body):
        raise InvalidInputError(
            f"{len(body) - offset} bytes follow the last input's binary data; binary_data_size must cover "
            "each input's data exactly"
        )
    request = _PlainInferRequest(inputs=tensors, parameters=header.get("parameters"), id=header.get("id"))
    return parse_infer_request(request)


def _binary_input(spec, body: bytes, offset: int):
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise InvalidInputError(f"each input in the JSON header must be an object with a name; got {_describe(spec)}")
    where = f'input "{spec["name"]}"'
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise InvalidInputError(f"{where}: parameters must be an object; got {_json_type(parameters)}")
    if "data" in spec:
        data, raw = spec["data"], None
    else:
        size = parameters.get("binary_data_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInputError(f"{where} has no data and no binary_data_size parameter (bytes); got {size!r}")
        if offset + size > len(body):
            raise InvalidInputError(
                f"{where} declares binary_data_size {size} but only {len(body) - offset} bytes remain in the body"
            )
        data, raw = None, body[offset : offset + size]
        offset += size
    tensor = _PlainInput(name=spec["name"], datatype=str(spec.get("datatype")), shape=spec.get("shape"),
                         data=data, _raw_data=raw)
    return tensor, offset


@dataclasses.dataclass
class _PlainInput:
    """An input tensor as parse_infer_request reads it (the fields of kserve's InferInput)."""

    name: str
    datatype: str
    shape: list
    data: object
    _raw_data: bytes | None


@dataclasses.dataclass
class _PlainInferRequest:
    inputs: list
    parameters: object
    id: str | None
    from_grpc: bool = False


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _describe(value) -> str:
    if isinstance(value, Mapping):
        return f"an object with keys {sorted(str(key) for key in value)}"
    return f"a JSON {_json_type(value)}"
