"""Fuzzing the predictor's request parser: any input gives a parsed request or an InvalidInputError.

An exception of any other type would reach the client as HTTP 500, so the property is that
none escapes. Example counts are bounded, and no example has a deadline.
"""

from __future__ import annotations

import base64
import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeface.errors import InvalidInputError
from kubeface.serving import payloads

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
images = st.binary(min_size=0, max_size=64)
base64_like = st.one_of(
    images.map(lambda data: base64.b64encode(data).decode()),
    st.text(alphabet="ABCDabcd0123+/=-_ \n", max_size=40),
    st.text(max_size=20),
)
instances = st.lists(
    st.one_of(
        st.builds(lambda text: {"image": {"b64": text}}, base64_like),
        json_values,
    ),
    max_size=4,
)
v1_bodies = st.one_of(
    json_values,
    st.builds(lambda items, params: {"instances": items, "parameters": params}, instances, json_values),
    st.builds(lambda items: {"instances": items}, instances),
)


def accepts_or_rejects(parse, *args) -> None:
    try:
        request = parse(*args)
    except InvalidInputError:
        return
    assert request.images
    assert len(request.images) == len(request.labels)
    assert all(isinstance(image, bytes) for image in request.images)


@FUZZ
@given(v1_bodies)
def test_v1_parser_fuzz(body):
    accepts_or_rejects(payloads.parse_v1, body)


@FUZZ
@given(json_values)
def test_options_parser_fuzz(parameters):
    try:
        options = payloads.parse_options(parameters, "parameters")
    except InvalidInputError:
        return
    assert isinstance(options.annotate, bool)
    assert options.min_face_size is None or 12 <= options.min_face_size <= payloads.MAX_MIN_FACE_SIZE


@FUZZ
@given(st.binary(max_size=200), st.text(max_size=6))
def test_binary_parser_fuzz_raw_bytes(body, header_length):
    accepts_or_rejects(payloads.parse_binary_request, body, header_length)


@FUZZ
@given(
    st.lists(images, min_size=1, max_size=3),
    st.integers(min_value=-8, max_value=8),
    st.one_of(st.lists(st.integers(min_value=-2, max_value=5), max_size=3), json_values),
    json_values,
)
def test_binary_parser_fuzz_framing(elements, size_error, shape, parameters):
    blob = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    spec = {"id": parameters if isinstance(parameters, (int, list)) else "fuzz",
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": shape,
                        "parameters": {"binary_data_size": max(0, len(blob) + size_error)}}],
            "parameters": parameters}
    header = json.dumps(spec).encode()
    accepts_or_rejects(payloads.parse_binary_request, header + blob, str(len(header)))
