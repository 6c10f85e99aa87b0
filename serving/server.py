"""kserve's ModelServer, bound to one host address, with kubeface's routes and limits.

kserve 0.21 binds its REST server to 0.0.0.0 and its gRPC server to [::], with no option to
change either. This server binds both to the host it is given: 127.0.0.1 by default for
`kubeface serve`, 0.0.0.0 in a container. It limits HTTP bodies and gRPC messages to
settings.max_body_bytes and reports ready only when every model is. kubeface's errors become
HTTP and gRPC status codes. Unless settings.ui is off, GET / returns the upload page.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from concurrent import futures

import grpc
from fastapi.exceptions import FastAPIDeprecationWarning
from grpc import aio

from kubeface.errors import KubefaceError
from kubeface.serving import routes, ui
from kubeface.serving.kserve_import import kserve  # noqa: F401  (must come before any kserve import)
from kubeface.serving.settings import ServingSettings

from kserve.errors import ModelNotReady, ServerNotLive, ServerNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.server import RESTServer

logger = logging.getLogger(__name__)

GRPC_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class AllModelsDataPlane(DataPlane):
    """A DataPlane whose server readiness requires every registered model to be ready."""

    async def ready(self) -> bool:
        models = list(self.model_registry.get_models().values())
        if not models:
            return False
        for model in models:
            if not await model.healthy():
                return False
        return await super().ready()


class HostRESTServer(RESTServer):
    """kserve's REST server on a chosen host, with kubeface's routes, error handlers and body limit."""

    def __init__(self, host: str, settings: ServingSettings, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.host = host
        self.settings = settings

    def create_application(self):
        app = kserve.model_server.app
        routes.InferenceRoutes(self.dataplane, self.model_repository_extension).register(app)
        if self.settings.ui:
            ui.UploadPage(self.dataplane.model_registry).register(app)
        super().create_application()
        routes.add_error_handlers(app, self.dataplane.model_registry)
        app.add_middleware(routes.BodySizeLimit, max_bytes=self.settings.max_body_bytes)


class StatusInterceptor(ExceptionToStatusInterceptor):
    """kserve's gRPC error mapping, plus kubeface's errors and readiness errors with their text."""

    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        if isinstance(ex, KubefaceError):
            code = GRPC_STATUS.get(ex.status_code, grpc.StatusCode.INTERNAL)
            if code == grpc.StatusCode.INTERNAL:
                logger.error("gRPC %s failed: %s", method_name, ex, exc_info=ex)
            else:
                logger.warning("gRPC %s rejected (%s): %s", method_name, code.name, ex)
            await context.abort(code, str(ex))
        elif isinstance(ex, (ModelNotReady, ServerNotReady, ServerNotLive)):
            # kserve's own mapping reads a .reason attribute these errors do not have.
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(ex))
        else:
            await super().handle_exception(ex, request_or_iterator, context, method_name)


class HostGRPCServer(GRPCServer):
    """kserve's gRPC inference service on a chosen host, with a message size limit."""

    def __init__(self, host: str, port: int, max_message_bytes: int, *args, **kwargs):
        super().__init__(port, *args, **kwargs)
        self.host = host
        self.max_message_bytes = max_message_bytes

    async def start(self, max_workers):
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(LoggingInterceptor(), StatusInterceptor()),
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                # Responses are bounded by the pixel limit (annotated PNGs), not by the request size.
                ("grpc.max_send_message_length", -1),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        address = f"[{self.host}]:{self._port}" if ":" in self.host else f"{self.host}:{self._port}"
        self._server.add_insecure_port(address)
        await self._server.start()
        logger.info("gRPC server listening on %s", address)
        await self._server.wait_for_termination()


class FaceModelServer(kserve.ModelServer):
    """A kserve ModelServer that binds to one host and registers models that are still loading."""

    def __init__(self, host: str = "127.0.0.1", settings: ServingSettings | None = None, **kwargs):
        kwargs.setdefault("workers", 1)
        super().__init__(**kwargs)
        self.host = host
        self.settings = settings or ServingSettings()
        self.dataplane = AllModelsDataPlane(model_registry=self.registered_models)

    def start(self, models) -> None:
        """Register the models, start their loading, and serve until SIGINT or SIGTERM.

        Unlike kserve's ModelServer.start, a model that is not ready yet (still loading, or
        failed) is registered too, so its readiness endpoint responds 503 with the reason.
        """
        for model in models:
            self.register_model(model)
            model.enable_latency_logging = self.enable_latency_logging
            model.start()
        self._rest_server = HostRESTServer(
            self.host, self.settings, kserve.model_server.FASTAPI_APP_IMPORT_STRING, self.dataplane,
            self.model_repository_extension, self.http_port, access_log_format=self.access_log_format,
            workers=1, grace_period=self.grace_period, event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = HostGRPCServer(
                self.host, self.grpc_port, self.settings.max_body_bytes, self.dataplane,
                self.model_repository_extension, kwargs={}, grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        # kserve 0.21 builds its FastAPI app with ORJSONResponse, which FastAPI 0.165 deprecates;
        # the warning concerns kserve's code, not a caller's.
        warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
        self.register_signal_handler()
        asyncio.run(self._serve())

    async def _serve(self):
        asyncio.get_running_loop().set_exception_handler(self.default_exception_handler)
        await asyncio.gather(*self.servers)
