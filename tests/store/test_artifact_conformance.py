"""Every artifact store backend behaves the same: content addressing, dedup, verification, safety."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from modelcycle.errors import ArtifactCorruptedError, NotFoundError, UnsafePathError
from modelcycle.store import open_artifact_store
from modelcycle.store.artifacts.base import ArtifactStore, safe_artifact_path
from modelcycle.store.artifacts.local import LocalArtifactStore


@pytest.fixture(params=["local", "fsspec-memory", "fsspec-file", "s3", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "server":  # a modelcycle server keeping the blobs in its own folder
        return open_artifact_store(request.getfixturevalue("server_uri"), token="conformance-token")
    if request.param == "local":
        return open_artifact_store(str(tmp_path / "artifacts"))
    if request.param == "s3":  # a real S3-compatible server process
        return open_artifact_store(f"s3://{request.getfixturevalue('s3_bucket')}/artifacts")
    if request.param == "fsspec-memory":
        return open_artifact_store(f"memory://modelcycle-test-{uuid.uuid4().hex}")
    # a file:// URL through the generic fsspec backend, to exercise it on real files
    from modelcycle.store.artifacts.remote import FsspecArtifactStore

    return FsspecArtifactStore(f"file://{tmp_path / 'fsspec'}")


def test_is_an_artifact_store(store: ArtifactStore) -> None:
    assert isinstance(store, ArtifactStore)


def test_bytes_round_trip_under_their_sha256(store: ArtifactStore) -> None:
    import hashlib

    digest, size = store.put_bytes(b"hello world")
    assert digest == hashlib.sha256(b"hello world").hexdigest()
    assert size == 11
    assert store.exists(digest)
    assert store.get_bytes(digest) == b"hello world"


def test_identical_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"x" * 3_000_000)
    d1, _ = store.put_file(f)
    d2, _ = store.put_bytes(b"x" * 3_000_000)
    d3, _ = store.put_file(f)
    assert d1 == d2 == d3
    assert [b[0] for b in store.iter_blobs()] == [d1]


def test_download_writes_verified_copy(store: ArtifactStore, tmp_path: Path) -> None:
    digest, _ = store.put_bytes(b"weights")
    out = store.download(digest, tmp_path / "out" / "w.bin")
    assert out.read_bytes() == b"weights"


def test_missing_blob_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError):
        store.get_bytes("0" * 64)
    with pytest.raises(NotFoundError):
        store.get_bytes("../../etc/passwd")


def test_delete_removes_blob(store: ArtifactStore) -> None:
    digest, _ = store.put_bytes(b"gone soon")
    store.delete(digest)
    assert not store.exists(digest)
    store.delete(digest)  # deleting twice is fine


def test_changed_bytes_fail_verification_with_clear_error(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a")
    digest, _ = store.put_bytes(b"the original bytes")
    blob = tmp_path / "a" / digest[:2] / digest
    blob.write_bytes(b"the 0riginal bytes")
    with pytest.raises(ArtifactCorruptedError, match=digest):
        store.get_bytes(digest)
    with pytest.raises(ArtifactCorruptedError):
        store.download(digest, tmp_path / "copy.bin")
    assert not (tmp_path / "copy.bin").exists(), "a corrupt blob must not leave a file behind"


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a")
    for i in range(5):
        store.put_bytes(f"blob {i}".encode())
    assert list((tmp_path / "a" / ".tmp").iterdir()) == []


def test_files_are_not_world_writable(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a")
    digest, _ = store.put_bytes(b"private")
    mode = (tmp_path / "a" / digest[:2] / digest).stat().st_mode
    assert not mode & 0o002


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "a/../../escape", "/etc/passwd", "C:/windows/x", "bad\x00name", "", "   ", "..", "a/..", "\\\\server\\x", "lone\ud800"],
)
def test_unsafe_artifact_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_artifact_path(name)


def test_safe_names_are_normalised() -> None:
    assert safe_artifact_path("plots/./roc.png") == "plots/roc.png"
    assert safe_artifact_path("a\\b.txt") == "a/b.txt"
    assert safe_artifact_path("report v2.html") == "report v2.html"
