"""Limits and options of the predictor, read from KUBEFACE_SERVE_* variables or the command line."""

from __future__ import annotations

import dataclasses
import os

from kubeface.errors import ConfigurationError
from kubeface.imageio import DEFAULT_MAX_PIXELS

ENV_PREFIX = "KUBEFACE_SERVE_"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class ServingSettings:
    """Request limits and options of one predictor. Every field can be set as KUBEFACE_SERVE_<FIELD>."""

    max_body_bytes: int = 32 * 1024 * 1024
    """Largest request body accepted, in bytes: HTTP bodies and gRPC messages alike."""
    max_pixels: int = DEFAULT_MAX_PIXELS
    """Largest decoded size of one request's images, in pixels, all images together."""
    max_images: int = 16
    """Maximum number of images in one request."""
    embed_batch_size: int = 64
    """Maximum number of face crops FaceNet embeds in one inference call; a request with up to this many
    faces is embedded in a single batch."""
    load_retry_seconds: int = 600
    """How long a model load keeps retrying a store it cannot reach, in seconds, before
    the predictor gives up and stays not ready."""
    ui: bool = True
    """Whether GET / returns the upload page."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "bool":
                if not isinstance(value, bool):
                    raise ConfigurationError(
                        f"serving setting {field.name} must be true or false; got {value!r}"
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"serving setting {field.name} must be a positive integer; got {value!r} "
                    f"(set it with --{field.name.replace('_', '-')} or {ENV_PREFIX}{field.name.upper()})"
                )

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "ServingSettings":
        """Build settings from KUBEFACE_SERVE_* variables; keyword arguments that are not None win."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            name = f"{ENV_PREFIX}{field.name.upper()}"
            if overrides.get(field.name) is not None:
                values[field.name] = overrides[field.name]
            elif environ.get(name) and field.type == "bool":
                values[field.name] = parse_bool(name, environ[name])
            elif environ.get(name):
                try:
                    values[field.name] = int(environ[name])
                except ValueError as error:
                    raise ConfigurationError(f"{name}={environ[name]!r} is not an integer") from error
        return cls(**values)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def parse_bool(name: str, text: str) -> bool:
    """Return the truth value of an environment variable's text (1/0, true/false, yes/no, on/off)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    choices = ", ".join(TRUE_WORDS + FALSE_WORDS)
    raise ConfigurationError(f"{name}={text!r} is not a truth value; use one of {choices}")
