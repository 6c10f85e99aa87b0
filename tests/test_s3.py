"""The S3 store against a real SeaweedFS server: faults, credentials, and secrets kept out of output."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest
from s3server import free_port

from kubeface.cli import main
from kubeface.errors import ConfigurationError
from kubeface.s3 import S3Store, parse_endpoint, resolve_credentials
from kubeface.store import open_store


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("kubeface: error:")]


def demo_photos(demo_root) -> dict[str, bytes]:
    root = demo_root / "dataset"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.glob("*/*.jpg"))}


def test_seaweedfs_honours_if_none_match(s3_env):
    store = open_store(s3_env.store_uri())
    assert store.create_exclusive("claims/1.0.0", b"mine")
    assert store._conditional is True
    assert not store.create_exclusive("claims/1.0.0", b"theirs")
    assert store.read_bytes("claims/1.0.0") == b"mine"
    assert store.list(".kubeface/") == []


def test_server_stopped_mid_push_then_resumed(private_seaweedfs, demo_root, monkeypatch, capsys):
    server = private_seaweedfs
    for key, value in server.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBEFACE_S3_MAX_ATTEMPTS", "3")
    uri = server.store_uri("team")
    command = ["dataset", "push", str(demo_root / "dataset"), "--name", "faces", "--version", "1.0.0",
               "--store", uri]
    original_upload = S3Store.upload_file
    started = []
    lock = threading.Lock()

    def upload_then_stop(self, key, path, sha256=None):
        with lock:
            started.append(key)
            if len(started) == 40:
                server.stop()
        return original_upload(self, key, path, sha256)

    monkeypatch.setattr(S3Store, "upload_file", upload_then_stop)
    assert main(command) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert server.endpoint in lines[0]
    assert "bucket 'kubeface'" in lines[0]
    assert "after 3 attempts" in lines[0]
    assert "dataset faces version 1.0.0 is unfinished" in lines[0]
    assert "run the same command again" in lines[0]

    monkeypatch.setattr(S3Store, "upload_file", original_upload)
    server.start()
    prefix = "team/datasets/faces/1.0.0/"
    stored = server.objects(prefix)
    assert f"{prefix}manifest.json" not in stored
    assert 0 < len(stored) < 150
    assert main(["dataset", "list", "--store", uri, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    assert main(command + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["present"] == len(stored)
    assert result["uploaded"] == 150 - len(stored)
    photos = demo_photos(demo_root)
    objects = server.objects(prefix)
    manifest = json.loads(objects.pop(f"{prefix}manifest.json"))
    assert {key[len(prefix):]: data for key, data in objects.items()} == photos
    for entry in manifest["files"]:
        assert entry["sha256"] == hashlib.sha256(photos[entry["path"]]).hexdigest()
        assert entry["size"] == len(photos[entry["path"]])


def test_wrong_secret_gives_one_line(s3_env, monkeypatch, capsys):
    wrong = "wrong-secret-" + os.urandom(8).hex()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    assert main(["dataset", "list", "--store", s3_env.store_uri()]) == 2
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 1
    assert s3_env.endpoint in lines[0]
    assert "bucket 'kubeface'" in lines[0]
    assert "access denied" in lines[0]
    assert "AWS_SECRET_ACCESS_KEY" in lines[0]
    assert wrong not in captured.err + captured.out
    assert s3_env.secret_key not in captured.err + captured.out


def test_unknown_access_key_gives_one_line(s3_env, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    assert main(["model", "list", "--store", s3_env.store_uri()]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert "access denied" in lines[0]
    assert "access key 'nobody'" in lines[0]
    assert s3_env.secret_key not in lines[0]


def test_missing_bucket_gives_one_line(s3_env, capsys):
    assert main(["dataset", "list", "--store", "s3://no-such-bucket/team"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert s3_env.endpoint in lines[0]
    assert "bucket 'no-such-bucket'" in lines[0]
    assert "does not exist" in lines[0]


def test_unreachable_endpoint_gives_one_line(s3_env, monkeypatch, capsys):
    monkeypatch.setenv("KUBEFACE_S3_MAX_ATTEMPTS", "2")
    endpoint = f"http://127.0.0.1:{free_port()}"
    assert main(["dataset", "list", "--store", "s3://kubeface/team", "--s3-endpoint", endpoint]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert endpoint in lines[0]
    assert "bucket 'kubeface'" in lines[0]
    assert "after 2 attempts: connection refused" in lines[0]


def test_missing_endpoint_names_the_option(s3_env, monkeypatch, capsys):
    for name in ("KUBEFACE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["dataset", "list", "--store", "s3://kubeface/team"]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert "no S3 endpoint for s3://kubeface/team" in lines[0]
    assert "--s3-endpoint" in lines[0]


def test_endpoint_with_password_rejected_unechoed():
    with pytest.raises(ConfigurationError) as caught:
        parse_endpoint("http://user:hunter2-secret@127.0.0.1:9000")
    assert "hunter2-secret" not in str(caught.value)
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)


def test_endpoint_forms():
    assert parse_endpoint("http://127.0.0.1:9000").secure is False
    assert parse_endpoint("https://minio.example:443/").netloc == "minio.example:443"
    for bad in ("127.0.0.1:9000", "ftp://host", "http://host:9000/bucket", "http://host:port"):
        with pytest.raises(ConfigurationError):
            parse_endpoint(bad)


def test_credentials_file_profile(s3_env, monkeypatch, tmp_path, capsys):
    path = tmp_path / "credentials"
    path.write_text(f"[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"
                    f"[team]\naws_access_key_id = {s3_env.access_key}\naws_secret_access_key = {s3_env.secret_key}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    monkeypatch.setenv("AWS_PROFILE", "team")
    credentials = resolve_credentials()
    assert credentials.access_key == s3_env.access_key
    assert credentials.source == f"{path} [team]"
    assert s3_env.secret_key not in repr(credentials)
    assert main(["dataset", "list", "--store", s3_env.store_uri(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_broken_credentials_file_hides_its_lines(monkeypatch, tmp_path):
    path = tmp_path / "credentials"
    path.write_text("aws_secret_access_key = leaked-secret-value\n[default\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(path))
    with pytest.raises(ConfigurationError) as caught:
        resolve_credentials()
    assert str(path) in str(caught.value)
    assert "leaked-secret-value" not in str(caught.value)


def test_half_set_credentials_rejected(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ConfigurationError) as caught:
        resolve_credentials()
    assert "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not" in str(caught.value)


def test_no_secret_in_cli_output_logs_or_objects(seaweedfs, demo_root, tmp_path):
    uri = seaweedfs.store_uri()
    environment = {**os.environ, **seaweedfs.environment(), "KUBEFACE_HOME": str(tmp_path / "home"),
                   "KUBEFACE_CACHE": str(tmp_path / "cache")}
    wrong = "wrong-secret-" + os.urandom(8).hex()
    commands = [
        (["dataset", "push", str(demo_root / "test"), "--name", "faces-test", "--version", "1.0.0"], {}),
        (["dataset", "list"], {}),
        (["dataset", "show", "faces-test", "1.0.0", "--files"], {}),
        (["dataset", "push", str(demo_root / "test"), "--name", "faces-test", "--version", "1.0.0"], {}),
        (["model", "list"], {"AWS_SECRET_ACCESS_KEY": wrong}),
    ]
    transcript = []
    codes = []
    for arguments, overrides in commands:
        completed = subprocess.run(
            [sys.executable, "-m", "kubeface.cli", "--log-level", "DEBUG", *arguments, "--store", uri],
            env={**environment, **overrides}, capture_output=True, text=True, timeout=300)
        codes.append(completed.returncode)
        transcript.append(completed.stdout + completed.stderr)
    assert codes == [0, 0, 0, 2, 2]
    assert "DEBUG" in transcript[0]
    text = "\n".join(transcript)
    assert seaweedfs.secret_key not in text
    assert wrong not in text
    prefix = uri.removeprefix("s3://kubeface/") + "/"
    objects = seaweedfs.objects(prefix)
    assert f"{prefix}datasets/faces-test/1.0.0/manifest.json" in objects
    for key, data in objects.items():
        assert seaweedfs.secret_key.encode() not in data, key
