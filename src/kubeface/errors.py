"""Exceptions raised by kubeface, each carrying the HTTP status a server maps it to."""

from __future__ import annotations


class KubefaceError(Exception):
    """Base class of every error kubeface raises on purpose."""

    status_code = 500


class InvalidInputError(KubefaceError):
    """The caller's input is wrong: an image, a request body, a name or an option."""

    status_code = 400


class PayloadTooLargeError(InvalidInputError):
    """The input exceeds a configured size or pixel limit."""

    status_code = 413


class DatasetError(InvalidInputError):
    """A dataset cannot be used as it is (too few people, a bad folder name)."""


class ConfigurationError(KubefaceError):
    """The installation or settings are wrong (a missing package, a bad store URI)."""


class ChecksumError(KubefaceError):
    """A file's content does not match the checksum recorded for it."""


class ModelError(KubefaceError):
    """A published model is missing, incomplete or incompatible."""

    status_code = 503


class StoreError(KubefaceError):
    """The store could not be read or written."""


class StoreUnavailableError(StoreError):
    """The store could not be reached, or returned server errors, through every retry.

    It may work again later, unlike a missing object or rejected credentials.
    """


class NotFoundError(StoreError):
    """A dataset or model version does not exist in the store."""

    status_code = 404


class VersionExistsError(StoreError):
    """A version that already exists would be overwritten."""

    status_code = 409
