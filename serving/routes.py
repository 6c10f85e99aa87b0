"""HTTP routes, error handlers and the body size limit that kubeface adds to kserve's REST server.

kserve 0.21 handles v2 requests that use the binary data extension in
InferRequest.from_bytes, which turns every BYTES element into text with
``str(element, "utf-8")``. An image file is not UTF-8, so the request fails with an
InferenceError, which kserve returns as HTTP 500 with the whole image repeated in the error text. A raw
image body sent to the v2 route fails too: kserve takes any non-JSON body for the binary
extension and returns 400 because the Inference-Header-Content-Length header is missing.

kubeface therefore registers its own handlers for the two inference routes ahead of kserve's:

- POST /v1/models/{name}:predict: a body with Content-Type image/* or application/octet-stream
  is one image, with options in the query string; a JSON body is parsed here, so that every
  error names the field at fault; a CloudEvent goes to kserve's handler.
- POST /v2/models/{name}/infer (and .../versions/{version}/infer): a body with the
  Inference-Header-Content-Length header is split here and its BYTES elements stay bytes; a
  raw image body is taken as one image; a JSON body is validated and handed to kserve's handler.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

import orjson
import pydantic
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from kubeface.errors import InvalidInputError, KubefaceError, NotFoundError, PayloadTooLargeError
from kubeface.serving import payloads
from kubeface.serving.kserve_import import kserve  # noqa: F401  (must come before any kserve import)

from kserve.errors import InvalidInput, ModelNotReady, ServerNotReady
from kserve.protocol.rest.v1_endpoints import V1Endpoints
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.protocol.rest.v2_endpoints import V2Endpoints

logger = logging.getLogger(__name__)

BINARY_HEADER = "inference-header-content-length"
MAX_VALIDATION_ERRORS = 5


class InferenceRoutes:
    """The v1 and v2 inference handlers, delegating to kserve's wherever kserve's work."""

    def __init__(self, dataplane, model_repository_extension=None):
        self.dataplane = dataplane
        self.v1 = V1Endpoints(dataplane, model_repository_extension)
        self.v2 = V2Endpoints(dataplane, model_repository_extension)

    def register(self, app: FastAPI) -> None:
        """Add the routes to app; call before kserve registers its own so these match first."""
        app.add_api_route("/v1/models/{model_name}:predict", self.v1_predict, methods=["POST"],
                          response_model=None)
        app.add_api_route("/v2/models/{model_name}/infer", self.v2_infer, methods=["POST"], response_model=None)
        app.add_api_route("/v2/models/{model_name}/versions/{model_version}/infer", self.v2_infer_version,
                          methods=["POST"], response_model=None, include_in_schema=False)

    async def v1_predict(self, model_name: str, request: Request):
        headers = request.headers
        if is_cloudevent(headers):
            return await self.v1.predict(model_name, request)
        if not await self.dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name)
        body = await request.body()
        content_type = headers.get("content-type")
        if payloads.is_raw_image_type(content_type):
            payload = payloads.parse_raw(body, request.query_params, payloads.PROTOCOL_V1)
        else:
            # Parsing a large JSON body takes tens of milliseconds: keep it off the event loop.
            payload = await asyncio.to_thread(parse_v1_json, body, content_type)
        response, response_headers = await self.dataplane.infer(model_name=model_name, request=payload,
                                                                headers=dict(headers))
        return Response(content=orjson.dumps(response), media_type="application/json", headers=response_headers)

    async def v2_infer(self, request: Request, response: Response, model_name: str):
        content_type = request.headers.get("content-type")
        body = await request.body()
        header_length = request.headers.get(BINARY_HEADER)
        if header_length is not None:
            payload = await asyncio.to_thread(payloads.parse_binary_request, body, header_length)
        elif payloads.is_raw_image_type(content_type):
            payload = payloads.parse_raw(body, request.query_params, payloads.PROTOCOL_V2)
        else:
            payload = await asyncio.to_thread(parse_v2_json, body, content_type)
        return await self.v2.infer(request, response, model_name, payload)

    async def v2_infer_version(self, request: Request, response: Response, model_name: str, model_version: str):
        model = self.dataplane.get_model_from_registry(model_name)
        recognizer = getattr(model, "recognizer", None)
        if recognizer is not None and recognizer.version != model_version:
            raise NotFoundError(
                f"model {model_name} serves version {recognizer.version}, not {model_version}; "
                f"send the request to /v2/models/{model_name}/infer"
            )
        return await self.v2_infer(request, response, model_name)


def is_cloudevent(headers) -> bool:
    """Return whether a request is a CloudEvent, which kserve's own v1 handler decodes."""
    content_type = (headers.get("content-type") or "").lower()
    return "ce-specversion" in headers or content_type.startswith("application/cloudevents")


def parse_v1_json(body: bytes, content_type: str | None) -> payloads.ImageRequest:
    return payloads.parse_v1(payloads.parse_json_body(body, content_type))


def parse_v2_json(body: bytes, content_type: str | None) -> InferenceRequest:
    """Decode a v2 JSON body and check it against the v2 inference request schema."""
    decoded = payloads.parse_json_body(body, content_type)
    if not isinstance(decoded, dict):
        raise InvalidInputError(
            f'a v2 inference request must be a JSON object with "inputs"; got a JSON {type(decoded).__name__}'
        )
    try:
        return InferenceRequest.model_validate(decoded)
    except pydantic.ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in item['loc']) or 'body'}: {item['msg']}"
            for item in error.errors()[:MAX_VALIDATION_ERRORS]
        ]
        raise InvalidInputError(
            "invalid v2 inference request: " + "; ".join(problems)
            + ' (expected {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], '
            '"data": ["<base64>"]}]})'
        ) from error


class BodySizeLimit:
    """ASGI middleware that rejects HTTP bodies larger than max_bytes with 413.

    A declared Content-Length over the limit is rejected at once; a body without one (chunked)
    is counted while the handler reads it, and PayloadTooLargeError stops the read.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_json(send, HTTPStatus.BAD_REQUEST, f"invalid Content-Length {declared.decode(errors='replace')!r}")
                return
            if length > self.max_bytes:
                await _send_json(send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._message(length))
                return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLargeError(self._message(received, declared=False))
            return message

        await self.app(scope, limited_receive, send)

    def _message(self, size: int, declared: bool = True) -> str:
        amount = f"{size} bytes" if declared else f"more than {self.max_bytes} bytes"
        return (
            f"request body has {amount}, above the limit of {self.max_bytes} bytes; send a smaller image "
            "or raise the limit (--max-body-bytes, KUBEFACE_SERVE_MAX_BODY_BYTES)"
        )


async def _send_json(send, status: int, message: str) -> None:
    response = JSONResponse(status_code=status, content={"error": message})
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def add_error_handlers(app: FastAPI, registry) -> None:
    """Map kubeface's errors to their status codes, and add each model's load state to 503 responses.

    Call after kserve added its handlers, so these replace kserve's for the same classes.
    """

    async def kubeface_error(_request, error: KubefaceError):
        if error.status_code >= 500:
            logger.error("request failed: %s", error, exc_info=error)
        else:
            logger.warning("request rejected (%d): %s", error.status_code, error)
        return JSONResponse(status_code=error.status_code, content={"error": str(error)})

    async def invalid_input(_request, error: InvalidInput):
        logger.warning("request rejected (400): %s", error)
        return JSONResponse(status_code=HTTPStatus.BAD_REQUEST, content={"error": str(error)})

    async def model_not_ready(_request, error: ModelNotReady):
        model = registry.get_model(error.model_name)
        message = str(error)
        status = model.status() if hasattr(model, "status") else ""
        if status and status not in message:
            message = f"{message} {status}"
        return JSONResponse(status_code=HTTPStatus.SERVICE_UNAVAILABLE, content={"error": message})

    async def server_not_ready(_request, error: ServerNotReady):
        states = [model.status() for model in registry.get_models().values() if hasattr(model, "status")]
        message = " ".join([str(error)] + states) if states else f"{error} No model is registered."
        return JSONResponse(status_code=HTTPStatus.SERVICE_UNAVAILABLE, content={"error": message})

    app.add_exception_handler(KubefaceError, kubeface_error)
    app.add_exception_handler(InvalidInput, invalid_input)
    app.add_exception_handler(ModelNotReady, model_not_ready)
    app.add_exception_handler(ServerNotReady, server_not_ready)
