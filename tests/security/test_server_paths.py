"""The team server never reads or writes outside its artifact root, whatever a name, a URI or an encoded path says:
a corpus of traversal encodings sent raw (never normalised by a client library) to every route that takes a name or
a path, with symbolic links planted in the artifact root; checked on the file system, not only by status codes."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelcycle.settings import Settings
from modelcycle.store.artifacts.base import safe_artifact_path
from modelcycle.store.metadata.base import NewRun, WriteBatch
from modelcycle.store.rpc import codec
from tests.conftest import running

CORPUS = [
    "..", "../", "../..", "../../outside/secret.txt", "..%2f", "..%2F..%2Foutside%2Fsecret.txt", "%2e%2e", "%2e%2e%2f",
    "%2E%2E/", "%252e%252e", "%252e%252e%252f", "..%252f", "..;/", "..;/..;/outside", "..\\", "..\\..\\outside",
    "%5c..%5c", "..%5c..%5c", "/etc/passwd", "//etc/passwd", "file:///etc/passwd", "file:/etc/passwd", "file:secret.txt",
    "\\\\server\\share\\x", "//server/share/x", "\\\\?\\C:\\Windows", "C:\\Windows\\win.ini", "C:/Windows/win.ini",
    "%00", "..%00/", "a\x00b", "%c0%ae%c0%ae", "%c0%ae%c0%ae%c0%af", "%e0%80%ae%e0%80%ae", "%c1%9c", "\u2024\u2024",
    "\uff0e\uff0e", "\uff0e\uff0e\uff0f", "..%u2215", ".%2e", "%2e.", "....//", "..././", "~/.ssh/id_rsa", "${HOME}",
    "s3://bucket/key", "http://169.254.169.254/latest/meta-data", "%2f%2f", "a/../../b", "ab/../../../outside",
]
SECRET = b"the outside secret"


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def _raw(url: str, method: str, path: str, body: bytes | None = None, token: str = "tok",
         kind: str = "application/octet-stream") -> tuple[int, bytes]:
    """One request with ``path`` sent exactly as given (percent signs, dots and backslashes untouched)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        safe = "".join(c if 0x21 <= ord(c) < 0x7f else urllib.parse.quote(c, safe="") for c in path)
        conn.request(method, safe, body=body, headers={"Authorization": f"Bearer {token}",
                                                       "Content-Type": kind})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.fixture
def planted(tmp_path: Path) -> Any:
    """A server whose artifact root holds planted links: a fan folder linked to a folder outside, and a blob name
    linked to a secret file outside."""
    from modelcycle.server.app import create_app
    from modelcycle.store import open_artifact_store, open_metadata_store

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    settings = Settings.for_home(tmp_path / "server", capture=False)
    artifacts = Path(settings.artifact_uri)
    digest, _ = open_artifact_store(settings.artifact_uri).put_bytes(b"an honest blob")
    secret_digest = hashlib.sha256(SECRET).hexdigest()
    (artifacts / secret_digest[:2]).mkdir(parents=True, exist_ok=True)
    os.symlink(outside / "secret.txt", artifacts / secret_digest[:2] / secret_digest)  # a blob that is a link
    linked_fan = "ab"
    os.symlink(outside, artifacts / linked_fan)  # a fan folder that is a link
    (outside / "date=2026-01-01").mkdir()
    (outside / "date=2026-01-01" / "part-1-a.parquet").write_bytes(SECRET)
    (artifacts / "predictions").mkdir()
    os.symlink(outside, artifacts / "predictions" / "model=linked")  # a model's log folder that is a link
    store = open_metadata_store(settings.store_uri)
    exp = store.get_or_create_experiment("e").id
    run = uuid.uuid4().hex
    store.write(WriteBatch(runs=[NewRun(id=run, experiment_id=exp, name="r", start_time=time.time())]))
    store.close()
    with running(create_app(settings, token="tok")) as url:
        yield url, tmp_path, outside, digest, run


def test_no_encoding_reads_or_writes_outside_the_root(planted: Any) -> None:
    url, tmp_path, outside, digest, run = planted
    from modelcycle.store.predictions import parquet_bytes
    from tests.server.test_logs import _rows

    log_file = parquet_bytes(_rows("m", 2, time.time()))  # a file the log would take, were the path one of its own
    before = _tree(outside)
    beside = {p for p in _tree(tmp_path) if not p.startswith(str(tmp_path / "server"))}
    answers: list[tuple[str, str, int]] = []
    for e in CORPUS:
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            for path in (f"/api/v1/blobs/{e}", f"/api/v1/blobs/{e}/{digest}", f"/api/v1/blobs/{digest}/{e}",
                         f"/api/v1/{e}/blobs/{digest}", f"/{e}", f"/api/v1/logs/{e}", f"/api/v1/logs/predictions/{e}",
                         f"/api/v1/logs/labels/{e}/date=2026-01-01", f"/api/v1/logs/predictions/model=m/{e}",
                         f"/api/v1/logs/predictions/model=m/date=2026-01-01/{e}", f"/api/v1/logs/predictions/model=linked/{e}",
                         f"/api/v1/logs/predictions/model=linked/date=2026-01-01/{e}part-1-a.parquet"):
                body_sent = (log_file if "/logs/" in path else b"x") if method == "PUT" else None
                status, body = _raw(url, method, path, body_sent)
                assert SECRET not in body and status < 500, (method, path, status, body[:200])
                answers.append((method, path, status))
        now = time.time()
        calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("get_or_create_experiment", (e,), {}), ("get_experiment", (e,), {}), ("get_run", (e,), {}),
            ("resolve_run_id", (e,), {}), ("get_environment", (e,), {}), ("get_model_version", (e, 1), {}),
            ("window_get", (e, e, 60, [0.0]), {}), ("cache_lookup", (e, e, e), {}),
            ("write", (WriteBatch(artifacts=[(run, e, digest, 14, now)]),), {}),
            ("write", (WriteBatch(artifacts=[(run, "ok.txt", e, 14, now)]),), {}),
            ("create_model_version", (e,), dict(run_id=run, source=e, artifact_path=e, hash="h", flavour="f",
                                                created_at=now, created_by=None, description=None, tags={})),
        ]
        for call, args, kwargs in calls:
            status, body = _raw(url, "POST", f"/api/v1/store/{call}", codec(call).encode_args(args, kwargs),
                                kind="application/json")
            assert SECRET not in body and status < 500, (call, e, status, body[:200])
            assert b"does not fit this call" not in body, body  # the call itself was made
    assert _tree(outside) == before, "something outside the root was written or removed"
    assert {p for p in _tree(tmp_path) if not p.startswith(str(tmp_path / "server"))} == beside
    assert (outside / "secret.txt").read_bytes() == SECRET
    for method in ("GET", "PUT", "DELETE"):  # the model's log folder that is a link leads nowhere
        for path in ("/api/v1/logs/predictions/model=linked", "/api/v1/logs/predictions/model=linked/date=2026-01-01",
                     "/api/v1/logs/predictions/model=linked/date=2026-01-01/part-1-a.parquet"):
            status, body = _raw(url, method, path, log_file if method == "PUT" else None)
            assert status in (404, 405) and SECRET not in body, (method, path, status, body[:200])
    assert _tree(outside) == before
    # the blob that is a link is never served, and no upload goes through the linked fan folder
    secret = hashlib.sha256(SECRET).hexdigest()
    status, body = _raw(url, "GET", f"/api/v1/blobs/{secret}")
    assert status >= 400 and SECRET not in body
    payload = next(b for b in (uuid.uuid4().bytes for _ in range(100_000)) if hashlib.sha256(b).hexdigest().startswith("ab"))
    status, _ = _raw(url, "PUT", f"/api/v1/blobs/{hashlib.sha256(payload).hexdigest()}", payload)
    assert status >= 400 and _tree(outside) == before
    listed = json.loads(_raw(url, "GET", "/api/v1/blobs")[1])
    assert [b[0] for b in listed] == [digest]  # links are not blobs
    # names that are not normal relative paths are never recorded as artifacts
    from modelcycle.store import open_metadata_store

    store = open_metadata_store(Settings.for_home(tmp_path / "server").store_uri)
    try:
        recorded = [a.path for a in store.get_run(run).artifacts]
        assert recorded and all(safe_artifact_path(p) == p for p in recorded)
    finally:
        store.close()
