"""The KServe predictor: find and name every face in the photos of a request.

The predictor loads a published model (a catalog URI, a model folder, or KServe's storage
initializer folder /mnt/models) and verifies the manifest checksums. It checks the networks and
the classifier and runs one warm-up inference, and only then reports ready. A model that fails
any of this keeps the predictor not ready, and readiness responses carry the error.

Work per request:
- preprocess takes the parsed request (see payloads and routes) and decodes its images in a
  worker thread;
- predict detects faces in each image and embeds all of them in one batch, on the single
  inference thread, since the compiled networks reuse their inference requests;
- postprocess draws annotated images when asked and builds the v1 JSON or v2 response.

The event loop only waits on these threads, so health and readiness requests get their
responses while a large photo is processed.

Response per image (v1 "predictions" items, and the JSON string elements of the v2 output
"result"): {"faces": [{"box", "score", "landmarks", "label", "probability", "nearest",
"distance"}], "width", "height", "timings_ms": {"decode", "detect", "embed_classify",
"annotate"}} plus "annotated_image": {"b64", "content_type"} when annotate is set.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping

import orjson

from kubeface import runtime
from kubeface.errors import InvalidInputError, KubefaceError, StoreUnavailableError
from kubeface.recognizer import Recognizer
from kubeface.serving import annotate, checks, inference, payloads
from kubeface.serving.kserve_import import kserve  # must come before any kserve import
from kubeface.serving.settings import ServingSettings

from kserve.errors import ModelNotReady
from kserve.model import InferenceVerb

logger = logging.getLogger(__name__)

PNG_TYPE = "image/png"
# Requests decoded or recognized at the same time: one runs on the inference thread while the
# next decodes, and the others wait with their bodies only, which bounds decoded-image memory.
MAX_ACTIVE_REQUESTS = 2
# Waits between load attempts while the store cannot be reached: 2, 4, 8, ... up to 30 s.
LOAD_RETRY_FIRST_DELAY_SECONDS = 2.0
LOAD_RETRY_MAX_DELAY_SECONDS = 30.0


@dataclasses.dataclass
class Batch:
    """A request with its images decoded, passed from preprocess to predict."""

    request: payloads.ImageRequest
    decoded: inference.DecodedImages
    started: float
    """time.perf_counter() when preprocess began."""


@dataclasses.dataclass
class BatchResult:
    """Result of predict, passed to postprocess: the faces of every image of a Batch."""

    batch: Batch
    images: list[inference.ImageFaces]
    embed_classify_ms: float


class FacePredictor(kserve.Model):
    """A kserve.Model that detects and recognizes faces with one published kubeface model."""

    def __init__(self, name: str, model_uri: str, settings: ServingSettings | None = None,
                 s3_endpoint: str | None = None):
        super().__init__(name)
        self.model_uri = model_uri
        self.s3_endpoint = s3_endpoint
        self.settings = settings or ServingSettings()
        self.recognizer: Recognizer | None = None
        self.load_error: str | None = None
        self.waiting_for_store: str | None = None
        """While a load waits to retry an unreachable store: the last error and the next delay."""
        self._stopping = threading.Event()
        self._load_lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._inference = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubeface-infer")
        self._active = asyncio.Semaphore(MAX_ACTIVE_REQUESTS)

    # Loading.

    def start(self) -> None:
        """Load the model in a background thread, so that health checks get responses meanwhile.

        kserve's base class sets ready here; this predictor becomes ready only in load().
        """
        if self.ready or self._loader is not None:
            return
        # Not a daemon: a process that exits while the loader is inside OpenVINO aborts
        # ("terminate called without an active exception"), so exit waits for the load.
        self._loader = threading.Thread(target=self.load, name="kubeface-load", daemon=False)
        self._loader.start()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait for a load started by start(); returns whether the model is ready."""
        if self._loader is not None:
            self._loader.join(timeout)
        return self.ready

    def load(self) -> bool:
        """Resolve, verify, check and warm up the model; returns whether it is ready.

        Returns at once while another load runs or after a load failed. A store that cannot be
        reached (StoreUnavailableError, raised once the store's own retries are spent) is tried
        again with backoff for up to settings.load_retry_seconds, so a pod that starts while
        the S3 endpoint is briefly down becomes ready once it is back. Any other failure is
        final, since a missing file, a checksum mismatch or a wrong network stays wrong.
        """
        if self.ready:
            return True
        if not self._load_lock.acquire(blocking=False):
            return False
        try:
            if self.load_error is not None:
                return False
            start = time.perf_counter()
            attempt = 0
            while True:
                attempt += 1
                logger.info("loading model %s (attempt %d)", self.model_uri, attempt)
                try:
                    recognizer = self._load_recognizer()
                    break
                except StoreUnavailableError as error:
                    waited = time.perf_counter() - start
                    delay = min(LOAD_RETRY_MAX_DELAY_SECONDS, LOAD_RETRY_FIRST_DELAY_SECONDS * 2 ** (attempt - 1))
                    if waited + delay > self.settings.load_retry_seconds or self._stopping.is_set():
                        attempts = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                        self._fail(error, f" (gave up after {attempts} in {waited:.0f} s)")
                        return False
                    self.waiting_for_store = f"{error} (attempt {attempt}; retrying in {delay:.0f} s)"
                    logger.warning("model %s: the store cannot be reached: %s; retrying in %.0f s",
                                   self.model_uri, error, delay)
                    if self._stopping.wait(delay):
                        self._fail(error, " (stopped while waiting for the store)")
                        return False
                # Any failure, whatever its type, must leave the predictor not ready with the error
                # on record: this runs in the loader thread, where an exception would be lost.
                except Exception as error:  # noqa: BLE001
                    self._fail(error)
                    return False
            self.recognizer = recognizer
            self.waiting_for_store = None
            self.ready = True
            self._log_settings(time.perf_counter() - start)
            return True
        finally:
            self._load_lock.release()

    def _load_recognizer(self) -> Recognizer:
        recognizer = Recognizer.from_uri(self.model_uri, self.s3_endpoint)
        checks.check_recognizer(recognizer)
        recognizer.embedder.batch_size = self.settings.embed_batch_size
        checks.warm_up(recognizer)
        return recognizer

    def _fail(self, error: Exception, suffix: str = "") -> None:
        self.waiting_for_store = None
        self.load_error = f"model {self.model_uri} failed to load: {type(error).__name__}: {error}{suffix}"
        # kubeface's own errors carry the whole story in their message; others get the traceback.
        logger.error("%s", self.load_error, exc_info=not isinstance(error, KubefaceError))

    def status(self) -> str:
        """Describe the load state in one sentence, for readiness responses and logs."""
        if self.ready:
            return f"model {self.name} is ready"
        if self.load_error:
            return self.load_error
        if self.waiting_for_store:
            return f"model {self.model_uri} is waiting for its store: {self.waiting_for_store}"
        return f"model {self.model_uri} is still loading"

    def stop(self) -> None:
        self.ready = False
        self._stopping.set()
        self._inference.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> dict:
        """Return the settings in force: model, limits and OpenVINO threads."""
        recognizer = self.recognizer
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        info = {
            "name": self.name,
            "model_uri": self.model_uri,
            "settings": self.settings.to_json(),
            "inference_threads": runtime.inference_threads(),
            "cpu_quota": runtime.cpu_quota(),
            "cpus_available": available,
        }
        if recognizer is not None:
            info.update({
                "catalog_name": recognizer.name,
                "version": recognizer.version,
                "people": len(recognizer.classifier.classes),
                "precision": _type_name(recognizer.embedder.model.get_property("INFERENCE_PRECISION_HINT")),
                "compiled_threads": int(recognizer.embedder.model.get_property("INFERENCE_NUM_THREADS")),
                "max_distance": recognizer.max_distance,
                "min_probability": recognizer.min_probability,
            })
        return info

    def _log_settings(self, seconds: float) -> None:
        info = self.describe()
        logger.info("model %s version %s ready in %.1f s: %d people, served as %r, from %s",
                    info["catalog_name"], info["version"], seconds, info["people"], self.name, self.model_uri)
        logger.info("OpenVINO: %d inference threads (CPU quota %s, %d CPUs available), precision %s",
                    info["compiled_threads"], info["cpu_quota"], info["cpus_available"], info["precision"])
        logger.info("limits: max_body_bytes=%d max_pixels=%d max_images=%d embed_batch_size=%d",
                    self.settings.max_body_bytes, self.settings.max_pixels, self.settings.max_images,
                    self.settings.embed_batch_size)
        logger.info("unknown-face rejection: max_distance=%s min_probability=%s",
                    info["max_distance"], info["min_probability"])

    # Metadata of the v2 protocol.

    def get_input_types(self) -> list[dict]:
        return [{"name": payloads.INPUT_NAME, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        return [{"name": payloads.OUTPUT_NAME, "datatype": "BYTES", "shape": [-1]}]

    # Requests.

    async def __call__(self, body, headers=None, verb=InferenceVerb.PREDICT):
        if not self.ready:
            raise ModelNotReady(self.name, self.status())
        async with self._active:
            return await super().__call__(body, headers=headers, verb=verb)

    async def preprocess(self, payload, headers: dict | None = None) -> Batch:
        """Parse the request and decode its images in a worker thread."""
        started = time.perf_counter()
        request = to_image_request(payload, headers)
        if len(request.images) > self.settings.max_images:
            raise InvalidInputError(
                f"the request has {len(request.images)} images, above the limit of {self.settings.max_images}; "
                "split it into several requests"
            )
        decoded = await asyncio.to_thread(
            inference.decode_images, request.images, request.labels, self.settings.max_pixels
        )
        return Batch(request=request, decoded=decoded, started=started)

    async def predict(self, batch: Batch, headers: dict | None = None) -> BatchResult:
        """Detect, embed and classify on the inference thread."""
        loop = asyncio.get_running_loop()
        images, embed_ms = await loop.run_in_executor(
            self._inference, inference.recognize_images, self.recognizer, batch.decoded.images,
            batch.request.options.min_face_size,
        )
        return BatchResult(batch=batch, images=images, embed_classify_ms=embed_ms)

    async def postprocess(self, result: BatchResult, headers: dict | None = None, response_headers=None):
        """Annotate when asked and build the response of the request's protocol."""
        request = result.batch.request
        pngs, annotate_ms = [None] * len(result.images), [None] * len(result.images)
        if request.options.annotate:
            pngs, annotate_ms = await asyncio.to_thread(_annotate_all, result)
        items = [
            self._image_json(result, index, pngs[index], annotate_ms[index]) for index in range(len(result.images))
        ]
        faces = sum(len(image.faces) for image in result.images)
        logger.info("request %s (%s): %d images, %d faces in %.1f ms", request.request_id or "-", request.protocol,
                    len(items), faces, (time.perf_counter() - result.batch.started) * 1000)
        version = self.recognizer.version
        if request.protocol == payloads.PROTOCOL_V1:
            return {"model_name": self.name, "model_version": version, "predictions": items}
        output = kserve.InferOutput(
            name=payloads.OUTPUT_NAME, shape=[len(items)], datatype="BYTES",
            data=[orjson.dumps(item).decode() for item in items],
        )
        return kserve.InferResponse(
            response_id=request.request_id or uuid.uuid4().hex, model_name=self.name, model_version=version,
            infer_outputs=[output], from_grpc=request.protocol == payloads.PROTOCOL_GRPC,
            use_binary_outputs=request.binary_outputs,
        )

    def _image_json(self, result: BatchResult, index: int, png: bytes | None, annotate_ms: float | None) -> dict:
        image = result.batch.decoded.images[index]
        found = result.images[index]
        timings = {
            "decode": result.batch.decoded.decode_ms[index],
            "detect": found.detect_ms,
            "embed_classify": result.embed_classify_ms,
        }
        if annotate_ms is not None:
            timings["annotate"] = annotate_ms
        item = {
            "faces": [face.to_json() for face in found.faces],
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "timings_ms": {key: round(value, 2) for key, value in timings.items()},
        }
        if png is not None:
            item["annotated_image"] = {"b64": base64.b64encode(png).decode("ascii"), "content_type": PNG_TYPE}
        return item


def _type_name(value) -> str:
    """Return an OpenVINO element type as its short name (f32, bf16), or the value as text."""
    to_string = getattr(value, "to_string", None)
    return to_string() if callable(to_string) else str(value)


def _annotate_all(result: BatchResult) -> tuple[list[bytes], list[float]]:
    pngs, times = [], []
    for image, found in zip(result.batch.decoded.images, result.images):
        start = time.perf_counter()
        pngs.append(annotate.annotated_png(image, found.faces))
        times.append((time.perf_counter() - start) * 1000)
    return pngs, times


def to_image_request(payload, headers: Mapping | None) -> payloads.ImageRequest:
    """Convert the payload kserve passes to preprocess into an ImageRequest.

    kubeface's routes pass an ImageRequest for raw, binary and v1 JSON bodies. kserve's own
    handlers pass an InferRequest for v2 JSON and gRPC, and for a v1 CloudEvent either a dict
    or, when its Content-Type is not one of kserve's JSON types, the body bytes.
    """
    if isinstance(payload, payloads.ImageRequest):
        return payload
    if isinstance(payload, kserve.InferRequest):
        return payloads.parse_infer_request(payload)
    if isinstance(payload, (bytes, bytearray)):
        content_type = (headers or {}).get("content-type")
        if payloads.is_raw_image_type(content_type):
            return payloads.parse_raw(payload, {}, payloads.PROTOCOL_V1)
        return payloads.parse_v1(payloads.parse_json_body(bytes(payload), content_type))
    return payloads.parse_v1(payload)
