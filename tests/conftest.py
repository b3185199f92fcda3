"""Shared fixtures: real SQLite files in temporary folders, and PostgreSQL when CI provides one."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from modelcycle.settings import Settings
from modelcycle.tracking.client import Client

PG_ADMIN = os.environ.get("MODELCYCLE_TEST_POSTGRES_URI")
S3_ENDPOINT = os.environ.get("MODELCYCLE_TEST_S3_ENDPOINT")  # an S3-compatible server that .ci/run started
_SESSION_PIDS: set[int] = set()  # servers kept for the whole session (started by the first test that needs them)
S3_ENV = {"AWS_ACCESS_KEY_ID": "modelcycle-test", "AWS_SECRET_ACCESS_KEY": "modelcycle-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1"}

# Imported by a test only where PyTorch is installed; doctest collection must not import it.
collect_ignore = ["models/torch_net.py"]

# The machines are shared and noisy: judge properties, not the time one example takes.
hypothesis_settings.register_profile("modelcycle", deadline=None)
hypothesis_settings.load_profile("modelcycle")


# Files whose tests run real processes for a minute or more. pytest-xdist hands whole files to its workers in the
# order they are collected (--dist loadfile): these go first, so that no worker is left with one of them at the end
# while the other has nothing to do.
LONG_FILES = ("tests/team/test_server_team.py", "tests/team/test_replicas.py", "tests/test_demo.py",
              "tests/serving/test_server_process.py", "tests/automation/test_agent_process.py",
              "tests/security/test_server_process.py", "tests/server/test_schemathesis.py", "tests/ui/test_ui.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONG_FILES.index(path) if path in LONG_FILES else len(LONG_FILES)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """Every process a test starts (servers, agents, Dask workers of the shared LocalCluster) ends with the
    test, however the test ends: the cluster is closed, then what is left is terminated, then killed."""
    import sys

    import psutil

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    executors = sys.modules.get("modelcycle.pipelines.executors")
    if executors is not None:
        executors._close_shared()
    checker = sys.modules.get("modelcycle.server._logcheck")
    if checker is not None:
        checker.shutdown()
    import multiprocessing.resource_tracker as tracker

    kept = _SESSION_PIDS | {getattr(tracker._resource_tracker, "_pid", None)}  # multiprocessing's own, for the session
    left = [p for p in me.children(recursive=True) if p.pid not in before and p.pid not in kept]
    for p in left:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(left, timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=15)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a real S3-compatible server on 127.0.0.1: the one CI started (``MODELCYCLE_TEST_S3_ENDPOINT``),
    else a moto server process started here for the session (skipped when moto is not installed)."""
    if S3_ENDPOINT:
        yield S3_ENDPOINT
        return
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    server = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    if server is None:
        pytest.skip("install moto[server] (or set MODELCYCLE_TEST_S3_ENDPOINT) to run the object-store tests")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _SESSION_PIDS.add(proc.pid)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the moto server did not start on {url}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the S3-compatible server; the endpoint and credentials are in this process'
    environment (``AWS_ENDPOINT_URL`` and the usual ``AWS_*`` variables), as a user would set them."""
    import boto3

    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    name = f"mc-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_endpoint, **_boto_credentials()).create_bucket(Bucket=name)
    return name


def _boto_credentials() -> dict[str, str]:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_ENV["AWS_DEFAULT_REGION"]}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Everything in one temporary folder; reproducibility capture off unless a test wants it."""
    return Settings.for_home(tmp_path / ".modelcycle", capture=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    c = Client(settings)
    yield c
    c.close()
    if c._store is not None:
        c._store.close()


def _pg_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    name = f"mc_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN.rsplit("/", 1)[0]  # type: ignore[union-attr]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_uri() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (skipped when MODELCYCLE_TEST_POSTGRES_URI is not set)."""
    if not PG_ADMIN:
        pytest.skip("set MODELCYCLE_TEST_POSTGRES_URI to run the PostgreSQL store tests")
    yield from _pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URI of an empty metadata store: every store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        if not PG_ADMIN:
            pytest.skip("set MODELCYCLE_TEST_POSTGRES_URI to run the PostgreSQL store tests")
        yield from _pg_database()


@pytest.fixture
def any_client(store_uri: str, tmp_path: Path) -> Iterator[Client]:
    """A client on SQLite or PostgreSQL (parametrised through ``store_uri``)."""
    s = Settings.for_home(tmp_path / ".modelcycle", capture=False).replace(store_uri=store_uri)
    c = Client(s)
    yield c
    c.close()
    if c._store is not None:
        c._store.close()


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its output."""
    import subprocess

    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def make_repo(tmp_path: Path):
    """Create a git repository with the given files committed on branch main."""

    def make(files: dict[str, str], name: str = "project") -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "user.email", "ds@example.com")
        git(repo, "config", "user.name", "DS")
        for rel, text in files.items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "first")
        return repo

    return make


@contextlib.contextmanager
def running(app, deadline: float = 60.0):
    """``app`` served by a real uvicorn server on a free loopback port, in a thread; yields its URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + deadline
        while not server.started:
            assert thread.is_alive() and time.monotonic() < end, "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server_uri(tmp_path: Path) -> Iterator[str]:
    """A modelcycle server (a real HTTP server on 127.0.0.1) over a SQLite store and a folder of its own, with a
    token; the client side reads the token from MODELCYCLE_TRACKING_TOKEN."""
    from modelcycle.server.app import create_app

    settings = Settings.for_home(tmp_path / "server-home", capture=False)
    with running(create_app(settings, token="conformance-token")) as url:
        yield url
