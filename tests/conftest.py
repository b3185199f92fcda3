"""Shared fixtures: real SQLite files in temporary folders, and PostgreSQL when CI provides one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from modelcycle.settings import Settings
from modelcycle.tracking.client import Client

PG_ADMIN = os.environ.get("MODELCYCLE_TEST_POSTGRES_URI")

# Imported by a test only where PyTorch is installed; doctest collection must not import it.
collect_ignore = ["models/torch_net.py"]

# The machines are shared and noisy: judge properties, not the time one example takes.
hypothesis_settings.register_profile("modelcycle", deadline=None)
hypothesis_settings.load_profile("modelcycle")


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
    left = [p for p in me.children(recursive=True) if p.pid not in before]
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
