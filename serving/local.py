"""Run `kubeface serve` as a child process on 127.0.0.1, for tests, benchmarks and notebooks."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from kubeface.errors import KubefaceError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """Return the HTTP status of GET url, or None when no server responds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


@dataclasses.dataclass
class LocalServer:
    """A `kubeface serve` child process and its addresses."""

    process: subprocess.Popen
    name: str
    http_port: int
    grpc_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v1/models/{self.name}:predict"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait(self, path: str, status: int = 200, timeout: float = 180.0) -> None:
        """Poll GET path until it returns status; raises KubefaceError with the log on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KubefaceError(f"kubeface serve exited with code {self.process.returncode}:\n{self.log()[-4000:]}")
            if http_status(self.url + path) == status:
                return
            time.sleep(0.2)
        raise KubefaceError(f"{self.url}{path} did not return {status} within {timeout} s:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """Stop the server with SIGTERM (SIGKILL after timeout seconds); returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def start_server(model_uri: str, name: str | None = None, extra_args: list[str] | None = None,
                 env: dict | None = None, log_dir: Path | None = None) -> LocalServer:
    """Start `kubeface serve` for model_uri on free loopback ports; it is live but maybe not ready yet."""
    http_port, grpc_port = free_port(), free_port()
    args = [sys.executable, "-m", "kubeface.cli", "serve", "--model", model_uri, "--host", LOOPBACK,
            "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    if name:
        args += ["--name", name]
    args += extra_args or []
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="kubeface-serve-"))
    log_path = log_dir / f"serve-{http_port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    server = LocalServer(process=process, name=name or "", http_port=http_port, grpc_port=grpc_port,
                         log_path=log_path)
    try:
        server.wait("/v2/health/live")
        if not server.name:
            server.name = _only_model(server.url)
    except BaseException:
        server.stop()
        raise
    return server


def _only_model(url: str) -> str:
    import json

    with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as response:
        models = json.loads(response.read())["models"]
    if len(models) != 1:
        raise KubefaceError(f"{url} serves {models}; expected exactly one model")
    return models[0]
