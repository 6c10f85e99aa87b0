"""A small client for the predictor's v1 REST API, on the standard library only."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from kubeface.errors import KubefaceError


class PredictorError(KubefaceError):
    """The predictor could not be reached or rejected a request; status_code is its HTTP status."""

    def __init__(self, message: str, status_code: int = 502):
        super().__init__(message)
        self.status_code = status_code


def _request_json(url: str, timeout: float, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"} if body is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", errors="replace")
        try:
            message = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            message = text
        raise PredictorError(f"{url} returned HTTP {error.code}: {message}", error.code) from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise PredictorError(f"cannot reach {url}: {reason}; check --url and that the server runs") from error


def predict_url(url: str, name: str | None = None, timeout: float = 30.0) -> str:
    """Return the v1 predict URL for a base URL, asking the server for its model when name is None."""
    if ":predict" in url:
        return url
    base = url.rstrip("/")
    if name is None:
        models = _request_json(f"{base}/v1/models", timeout).get("models", [])
        if len(models) != 1:
            raise PredictorError(f"{base} serves the models {models}; choose one with --name", 400)
        name = models[0]
    return f"{base}/v1/models/{urllib.parse.quote(name, safe='')}:predict"


def predict(url: str, images: list[bytes], options: dict | None = None, timeout: float = 120.0) -> dict:
    """Send encoded images in one v1 request and return the decoded JSON response."""
    body = {"instances": [{"image": {"b64": base64.b64encode(data).decode("ascii")}} for data in images]}
    if options:
        body["parameters"] = options
    return _request_json(url, timeout, body)


def predict_file(url: str, path: Path, options: dict | None = None, timeout: float = 120.0) -> dict:
    """Send one image file and return its prediction: faces, size, timings, maybe the annotated image."""
    return predict(url, [Path(path).read_bytes()], options, timeout)["predictions"][0]


def decode_annotated(annotated: dict) -> bytes:
    """Return the PNG bytes of a prediction's "annotated_image"."""
    return base64.b64decode(annotated["b64"])


def annotated_path(template: Path, index: int, count: int) -> Path:
    """Return where the annotated copy of image index goes: the template itself for one image."""
    if count == 1:
        return template
    return template.with_name(f"{template.stem}-{index + 1}{template.suffix or '.png'}")


def summary(prediction: dict) -> str:
    """Describe a prediction in one line: names with probabilities, or "no face"."""
    names = []
    for face in prediction.get("faces", []):
        probability = face.get("probability")
        suffix = f" ({probability:.2f})" if probability is not None else ""
        names.append(f"{face.get('label') or 'unknown'}{suffix}")
    return ", ".join(names) if names else "no face"
