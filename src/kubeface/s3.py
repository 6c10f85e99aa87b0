"""A store in an S3 bucket (MinIO, SeaweedFS, AWS S3 or another S3-compatible server).

The store URI is s3://BUCKET/PREFIX. The endpoint is a URL given by --s3-endpoint or one of
ENDPOINT_VARIABLES (http://host:port means no TLS), and requests use path-style addressing.
Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a Kubernetes secret can
set them), else from the shared credentials file. Secrets never appear in a message or log.
"""

from __future__ import annotations

import configparser
import dataclasses
import io
import logging
import os
import random
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from kubeface.errors import ConfigurationError, InvalidInputError, NotFoundError, StoreError, StoreUnavailableError
from kubeface.store import Store, check_key, new_file

logger = logging.getLogger(__name__)

T = TypeVar("T")

ENDPOINT_ENV = "KUBEFACE_S3_ENDPOINT"
# Checked in this order after --s3-endpoint; the last two are the AWS SDKs' own variables.
ENDPOINT_VARIABLES = (ENDPOINT_ENV, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
MAX_ATTEMPTS_ENV = "KUBEFACE_S3_MAX_ATTEMPTS"
CONDITIONAL_WRITES_ENV = "KUBEFACE_S3_CONDITIONAL_WRITES"
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 120.0
# Files up to this size go up in one PUT request; larger ones as a multipart upload.
PART_SIZE = 64 * 1024 * 1024
DOWNLOAD_CHUNK = 1024 * 1024
SHA256_METADATA = "sha256"
# A pending marker of the listing fallback older than this belongs to a writer that died.
STALE_PENDING_SECONDS = 600.0
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

# S3 error codes that reject the credentials rather than the request.
CREDENTIAL_CODES = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
    "InvalidSecurity", "AuthorizationHeaderMalformed", "MissingSecurityHeader",
}
RETRYABLE_CODES = {"InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout", "ServerBusy"}


@dataclasses.dataclass(frozen=True)
class Credentials:
    """An access key pair and where it was found; the secret parts are left out of repr."""

    access_key: str | None
    secret_key: str | None = dataclasses.field(default=None, repr=False)
    session_token: str | None = dataclasses.field(default=None, repr=False)
    source: str = "none"

    def describe(self) -> str:
        """Name the access key and its source, for error messages (never the secret)."""
        if not self.access_key:
            return "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        return f"access key {self.access_key!r} from {self.source}"


def resolve_credentials(environ=None) -> Credentials:
    """Find credentials: the AWS_* variables first, then the shared credentials file.

    The file is AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, section AWS_PROFILE or
    "default". Without either, requests go unsigned (anonymous), which servers usually reject.
    """
    environ = os.environ if environ is None else environ
    access_key = environ.get("AWS_ACCESS_KEY_ID") or None
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY") or None
    if access_key and secret_key:
        return Credentials(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None,
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if access_key or secret_key:
        present, missing = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if access_key
                            else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"))
        raise ConfigurationError(f"{present} is set but {missing} is not; set both, or neither to use "
                                 "the shared credentials file")
    path = Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials").expanduser()
    profile = environ.get("AWS_PROFILE") or "default"
    if not path.is_file():
        if environ.get("AWS_SHARED_CREDENTIALS_FILE"):
            raise ConfigurationError(f"AWS_SHARED_CREDENTIALS_FILE names {path}, which does not exist")
        return Credentials(None)
    return _read_credentials_file(path, profile, explicit_profile=bool(environ.get("AWS_PROFILE")))


def _read_credentials_file(path: Path, profile: str, explicit_profile: bool) -> Credentials:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError) as error:
        # The parser's own message quotes file lines, which can hold a secret: name the file only.
        raise ConfigurationError(f"cannot read the credentials file {path}: it is not a valid INI file "
                                 f"({type(error).__name__}); fix or remove it") from None
    if not parser.has_section(profile):
        if explicit_profile:
            raise ConfigurationError(f"profile {profile!r} (AWS_PROFILE) not found in the credentials file {path}")
        return Credentials(None)
    section = parser[profile]
    access_key = section.get("aws_access_key_id") or None
    secret_key = section.get("aws_secret_access_key") or None
    if not access_key or not secret_key:
        raise ConfigurationError(f"profile {profile!r} in {path} needs both aws_access_key_id and "
                                 "aws_secret_access_key")
    return Credentials(access_key, secret_key, section.get("aws_session_token") or None, f"{path} [{profile}]")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """An S3 endpoint URL split into what the minio client takes."""

    url: str
    netloc: str
    secure: bool


def parse_endpoint(value: str) -> Endpoint:
    """Parse http://host:port or https://host[:port]; reject paths, queries and user:password@."""
    text = (value or "").strip()
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise ConfigurationError("invalid S3 endpoint: it contains user information before '@'; give the "
                                 "URL without it and pass credentials through AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"invalid S3 endpoint {text!r}: expected a URL such as "
                                 "http://minio-service.kubeflow:9000 (http means no TLS)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(f"invalid S3 endpoint {text!r}: give only scheme, host and port; the bucket "
                                 "and prefix belong in the store URI s3://BUCKET/PREFIX")
    try:
        parts.port
    except ValueError as error:
        raise ConfigurationError(f"invalid S3 endpoint {text!r}: {error}") from error
    return Endpoint(f"{parts.scheme}://{parts.netloc}", parts.netloc, parts.scheme == "https")


def endpoint_from_environment(explicit: str | None = None, environ=None) -> str:
    """Return the endpoint URL from the option, else the first variable of ENDPOINT_VARIABLES set."""
    environ = os.environ if environ is None else environ
    if explicit:
        return explicit
    for name in ENDPOINT_VARIABLES:
        if environ.get(name):
            return environ[name]
    return ""


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split s3://BUCKET/PREFIX into the bucket and the prefix without slashes at either end."""
    if not uri.startswith("s3://"):
        raise InvalidInputError(f"invalid S3 URI {uri!r}: expected s3://BUCKET/PREFIX")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.strip("/")
    if not BUCKET_PATTERN.match(bucket) or ".." in bucket:
        raise InvalidInputError(f"invalid bucket name {bucket!r} in {uri!r}: use 3-63 lowercase letters, "
                                "digits, '.' or '-', starting and ending with a letter or digit")
    if prefix:
        check_key(prefix)
    return bucket, prefix


def _reason(error: BaseException) -> str:
    """Describe a transport error in a few words, without urllib3's object reprs."""
    text = str(error)
    for marker, words in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                          ("Name or service not known", "host name not found"),
                          ("Temporary failure in name resolution", "host name not found"),
                          ("Connection reset", "connection reset"), ("Connection aborted", "connection aborted"),
                          ("RemoteDisconnected", "connection closed by the server")):
        if marker in text:
            return words
    if isinstance(error, ServerError):
        return f"HTTP status {error.status_code}"
    if isinstance(error, InvalidResponseError):
        return f"HTTP status {getattr(error, '_code', '?')}"
    if isinstance(error, S3Error):
        return error.code
    return type(error).__name__


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, S3Error):
        return error.code in RETRYABLE_CODES
    if isinstance(error, ServerError):
        return error.status_code >= 500
    if isinstance(error, InvalidResponseError):
        return getattr(error, "_code", 0) >= 500
    return isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


class ConditionalWritesUnsupported(Exception):
    """The server rejected an If-None-Match PUT with 501 Not Implemented."""


class S3Store(Store):
    """Objects under s3://bucket/prefix, with bounded retries and exclusive creates.

    create_exclusive sends a single-part PUT with If-None-Match: * where the server honours it
    (AWS S3, MinIO, SeaweedFS 4.48). One probe per store finds out, and other servers get the
    listing protocol of _create_by_listing. KUBEFACE_S3_CONDITIONAL_WRITES=on|off skips the probe.
    """

    parallelism = 8

    def __init__(self, bucket: str, prefix: str, endpoint: str, credentials: Credentials | None = None,
                 region: str | None = None, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 backoff_seconds: float = DEFAULT_BACKOFF_SECONDS, conditional_writes: str = "auto"):
        if max_attempts < 1:
            raise ConfigurationError(f"S3 max attempts must be at least 1; got {max_attempts}")
        if conditional_writes not in ("auto", "on", "off"):
            raise ConfigurationError(f"invalid {CONDITIONAL_WRITES_ENV} {conditional_writes!r}: use auto, on or off")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint = parse_endpoint(endpoint)
        self.credentials = credentials or Credentials(None)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._conditional = {"on": True, "off": False}.get(conditional_writes)
        self._bucket_checked = False
        self._bucket_lock = threading.Lock()
        self._probe_lock = threading.Lock()
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
            maxsize=self.parallelism + 2,
            retries=False,  # _call retries, with backoff, and logs each retry
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or os.environ.get("AWS_CA_BUNDLE") or certifi.where(),
        )
        self._client = Minio(
            self.endpoint.netloc,
            access_key=self.credentials.access_key,
            secret_key=self.credentials.secret_key,
            session_token=self.credentials.session_token,
            secure=self.endpoint.secure,
            # A fixed region spares a GetBucketLocation request; MinIO and SeaweedFS accept any.
            region=region or "us-east-1",
            http_client=http,
        )
        self._client.disable_virtual_style_endpoint()

    @classmethod
    def from_uri(cls, uri: str, endpoint: str | None = None) -> "S3Store":
        """Open s3://bucket/prefix with the endpoint, credentials and retry settings of the environment."""
        bucket, prefix = split_s3_uri(uri)
        url = endpoint_from_environment(endpoint)
        if not url:
            raise ConfigurationError(f"no S3 endpoint for {uri}: pass --s3-endpoint URL or set {ENDPOINT_ENV}, "
                                     "for example http://minio-service.kubeflow:9000")
        attempts_text = os.environ.get(MAX_ATTEMPTS_ENV) or str(DEFAULT_MAX_ATTEMPTS)
        if not attempts_text.isdigit():
            raise ConfigurationError(f"invalid {MAX_ATTEMPTS_ENV} {attempts_text!r}: expected a whole number >= 1")
        return cls(bucket, prefix, url, resolve_credentials(),
                   region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                   max_attempts=int(attempts_text),
                   conditional_writes=(os.environ.get(CONDITIONAL_WRITES_ENV) or "auto").lower())

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r}, endpoint={self.endpoint.url!r})"

    # Requests, retries and errors.

    def _object(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self) -> str:
        return f"S3 endpoint {self.endpoint.url}, bucket {self.bucket!r}"

    def _call(self, action: str, function: Callable[[], T], check_bucket: bool = True) -> T:
        """Run one request, retrying transport errors and 5xx responses with exponential backoff.

        Raises ConfigurationError for rejected credentials or a missing bucket, NotFoundError
        for a missing object and StoreError when the attempts run out.
        """
        if check_bucket:
            self._check_bucket()
        for attempt in range(1, self.max_attempts + 1):
            try:
                return function()
            except S3Error as error:
                if error.code == "NoSuchKey":
                    raise NotFoundError(f"{action}: object not found in {self.uri}") from None
                if not _is_retryable(error):
                    raise self._request_error(action, error) from None
                failure = error
            except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, ConnectionError,
                    TimeoutError) as error:
                # Other OSErrors, such as a local file that cannot be opened, are not the server's.
                if not _is_retryable(error):
                    raise StoreError(f"{self._where()}: cannot {action}: {_reason(error)}") from None
                failure = error
            if attempt == self.max_attempts:
                break
            delay = min(MAX_BACKOFF_SECONDS, self.backoff_seconds * 2 ** (attempt - 1)) * random.uniform(0.75, 1.0)
            logger.warning("%s: cannot %s (%s), attempt %d of %d; retrying in %.1f s",
                           self._where(), action, _reason(failure), attempt, self.max_attempts, delay)
            time.sleep(delay)
        raise StoreUnavailableError(
            f"{self._where()}: cannot {action} after {self.max_attempts} attempts: {_reason(failure)}; "
            f"check that the server is running and that --s3-endpoint or {ENDPOINT_ENV} names it"
        ) from None

    def _request_error(self, action: str, error: S3Error) -> Exception:
        if error.code in CREDENTIAL_CODES:
            return ConfigurationError(
                f"{self._where()}: cannot {action}: access denied ({error.code}) for "
                f"{self.credentials.describe()}; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and that "
                "the key may use the bucket"
            )
        if error.code == "NoSuchBucket":
            return self._missing_bucket()
        return StoreError(f"{self._where()}: cannot {action}: {error.code}: {error.message}")

    def _missing_bucket(self) -> ConfigurationError:
        return ConfigurationError(f"{self._where()}: the bucket does not exist; create it (for example "
                                  f"`mc mb ALIAS/{self.bucket}`) or fix the store URI {self.uri}")

    def _check_bucket(self) -> None:
        """Check once that the bucket exists, so a typo fails with one clear line."""
        if self._bucket_checked:
            return
        with self._bucket_lock:
            if self._bucket_checked:
                return
            exists = self._call("check the bucket", lambda: self._client.bucket_exists(self.bucket),
                                check_bucket=False)
            if not exists:
                raise self._missing_bucket()
            self._bucket_checked = True

    # The Store interface.

    def read_bytes(self, key: str) -> bytes:
        name = self._object(key)

        def get() -> bytes:
            response = self._client.get_object(self.bucket, name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        try:
            return self._call(f"read {name}", get)
        except NotFoundError:
            raise NotFoundError(f"object {key!r} not found in store {self.uri}") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        from kubeface.catalog import sha256_bytes

        name = self._object(key)
        metadata = {SHA256_METADATA: sha256_bytes(data)}
        self._call(f"write {name}", lambda: self._client.put_object(
            self.bucket, name, io.BytesIO(data), len(data), metadata=metadata))

    def upload_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        from kubeface.weights import sha256_file

        name = self._object(key)
        path = Path(path)
        metadata = {SHA256_METADATA: sha256 or sha256_file(path)}

        def put() -> None:
            # Opened per attempt, so a retry sends the file from its first byte.
            with open(path, "rb") as stream:
                self._client.put_object(self.bucket, name, stream, path.stat().st_size,
                                        metadata=metadata, part_size=PART_SIZE)

        self._call(f"upload {name}", put)

    def download_file(self, key: str, path: Path) -> None:
        name = self._object(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)

        def get() -> None:
            response = self._client.get_object(self.bucket, name)
            try:
                with new_file(path.parent, ".download-") as stream:
                    try:
                        for chunk in response.stream(DOWNLOAD_CHUNK):
                            stream.write(chunk)
                    except BaseException:
                        os.unlink(stream.name)
                        raise
                os.replace(stream.name, path)
            finally:
                response.close()
                response.release_conn()

        try:
            self._call(f"download {name}", get)
        except NotFoundError:
            raise NotFoundError(f"object {key!r} not found in store {self.uri}") from None

    def exists(self, key: str) -> bool:
        name = self._object(key)
        try:
            self._call(f"check {name}", lambda: self._client.stat_object(self.bucket, name))
        except NotFoundError:
            return False
        return True

    def object_sha256(self, key: str) -> str | None:
        name = self._object(key)
        try:
            stat = self._call(f"check {name}", lambda: self._client.stat_object(self.bucket, name))
        except NotFoundError:
            return None
        return (stat.metadata or {}).get(f"x-amz-meta-{SHA256_METADATA}")

    def _list_objects(self, prefix: str) -> list:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        return self._call(f"list {full or '/'}", lambda: [
            item for item in self._client.list_objects(self.bucket, prefix=full, recursive=True)
            if not item.is_dir
        ])

    def list(self, prefix: str) -> list[str]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        return sorted(item.object_name[strip:] for item in self._list_objects(prefix))

    def delete(self, key: str) -> None:
        name = self._object(key)
        self._call(f"delete {name}", lambda: self._client.remove_object(self.bucket, name))

    # Exclusive creation.

    def create_exclusive(self, key: str, data: bytes) -> bool:
        if self._conditional is None:
            with self._probe_lock:
                if self._conditional is None:
                    self._conditional = self._probe_conditional_writes()
        if self._conditional:
            try:
                return self._create_if_none_match(key, data)
            except ConditionalWritesUnsupported:
                logger.warning("%s does not implement If-None-Match on PUT; exclusive creates fall back to "
                               "the slower listing protocol", self._where())
                self._conditional = False
        return self._create_by_listing(key, data)

    def _put_if_none_match(self, name: str, data: bytes) -> bool:
        """PUT an object unless one exists; False on 412 Precondition Failed.

        minio 7.2 has no public argument for If-None-Match (its metadata argument would turn
        the header into x-amz-meta-if-none-match), so this calls its single-part _put_object.
        """
        from kubeface.catalog import sha256_bytes

        headers = {"If-None-Match": "*", f"x-amz-meta-{SHA256_METADATA}": sha256_bytes(data)}
        try:
            self._client._put_object(self.bucket, name, data, headers=headers)
        except S3Error as error:
            if error.code == "PreconditionFailed":
                return False
            if error.code == "NotImplemented":
                raise ConditionalWritesUnsupported(error.message) from None
            raise
        return True

    def _create_if_none_match(self, key: str, data: bytes) -> bool:
        name = self._object(key)
        attempts = []

        def put() -> bool:
            attempts.append(1)
            return self._put_if_none_match(name, data)

        if self._call(f"create {name}", put):
            return True
        if len(attempts) > 1:
            # An earlier attempt may have created the object before its response was lost.
            try:
                return self.read_bytes(key) == data
            except NotFoundError:
                return False
        return False

    def _probe_conditional_writes(self) -> bool:
        """Check with a throwaway object that a second If-None-Match PUT gets 412."""
        name = self._object(f".kubeface/probe-{uuid.uuid4().hex}")
        try:
            first = self._call("probe conditional writes", lambda: self._put_if_none_match(name, b"probe"))
            second = self._call("probe conditional writes", lambda: self._put_if_none_match(name, b"probe"))
        except ConditionalWritesUnsupported:
            first, second = True, True
        finally:
            self._call(f"delete {name}", lambda: self._client.remove_object(self.bucket, name))
        supported = first and not second
        if not supported:
            logger.warning("%s ignores If-None-Match on PUT; exclusive creates fall back to the slower "
                           "listing protocol", self._where())
        return supported

    def _create_by_listing(self, key: str, data: bytes) -> bool:
        """Create key unless it exists, on a server without conditional writes.

        Each writer puts a unique marker under KEY.pending/ and lists that folder. It writes KEY
        only when its own marker is the only live one and KEY is still missing, and it removes
        its marker afterwards in every case. With read-after-write consistent listings (AWS S3 since
        2020, MinIO, SeaweedFS), the later of two writers always sees the earlier one's marker
        or its finished KEY, so at most one writer creates KEY. When writers collide, all of them
        back off for a random time and try again.
        """
        pending = f"{key}.pending/"
        attempts = max(3, 2 * self.max_attempts)
        for attempt in range(attempts):
            if self.exists(key):
                return False
            marker = f"{pending}{time.time_ns():020d}-{uuid.uuid4().hex}"
            self.write_bytes(marker, b"")
            try:
                now = time.time()
                rivals = [item for item in self._list_objects(pending)
                          if item.object_name != self._object(marker)
                          and (item.last_modified is None
                               or now - item.last_modified.timestamp() < STALE_PENDING_SECONDS)]
                if not rivals and not self.exists(key):
                    self.write_bytes(key, data)
                    return True
            finally:
                self.delete(marker)
            time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))
        raise StoreError(f"{self._where()}: could not create {self._object(key)} because other writers kept "
                         f"competing for it over {attempts} attempts; try again")
