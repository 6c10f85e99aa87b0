"""The predictor's upload page: GET / returns ui.html, GET /ui/models the served models' names and versions.

The page sends photos to the public v1 route and shows the response, so it displays what any
client receives. It uses only URLs relative to its own location, so an ingress that serves the
predictor under a path prefix (KServe's /serving/NAMESPACE/NAME/) needs no change. The
Content-Security-Policy header lets the page load nothing from another origin.
"""

from __future__ import annotations

import logging
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

logger = logging.getLogger(__name__)

PAGE = "ui.html"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def read_page() -> bytes:
    """Return the page's HTML, shipped as package data of kubeface.serving."""
    return resources.files("kubeface.serving").joinpath(PAGE).read_bytes()


class UploadPage:
    """The routes of the upload page, for a server whose models are in model_registry."""

    def __init__(self, model_registry):
        self.model_registry = model_registry
        self.page = read_page()

    def register(self, app: FastAPI) -> None:
        """Add the routes to app, before kserve adds its own, whose GET / is a liveness check."""
        app.add_api_route("/", self.index, methods=["GET"], include_in_schema=False, response_model=None)
        app.add_api_route("/ui/models", self.models, methods=["GET"], include_in_schema=False,
                          response_model=None)
        logger.info("upload page enabled at /")

    async def index(self) -> Response:
        return Response(content=self.page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def models(self) -> JSONResponse:
        """Return each served model's name, load state and, once loaded, its catalog version and people."""
        entries = []
        for name, model in self.model_registry.get_models().items():
            entry = {"name": name, "ready": bool(model.ready), "status": _status(model)}
            recognizer = getattr(model, "recognizer", None)
            if recognizer is not None:
                entry.update({"catalog_name": recognizer.name, "version": recognizer.version,
                              "people": len(recognizer.classifier.classes)})
            entries.append(entry)
        return JSONResponse({"models": entries}, headers={"Cache-Control": "no-store"})


def _status(model) -> str:
    if hasattr(model, "status"):
        return model.status()
    if model.ready:
        return "ready"
    return "not ready"
