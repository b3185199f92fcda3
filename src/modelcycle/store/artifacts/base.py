"""The artifact store protocol and the hashing, dedup and verification every backend shares."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from modelcycle._hashing import CHUNK
from modelcycle.errors import ArtifactCorruptedError, NotFoundError, UnsafePathError

__all__ = ["ArtifactStore", "ContentStore", "safe_artifact_path"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MAX_NAME = 1024


def safe_artifact_path(name: str) -> str:
    """Normalise an artifact name to a relative POSIX path, refusing names that could escape a folder.

    Args:
        name: the name a user gave, such as ``"plots/roc.png"``.

    Returns:
        The name with ``\\`` turned into ``/`` and ``./`` segments removed.

    Raises:
        UnsafePathError: the name is empty, absolute, contains ``..``, a NUL byte or a drive letter.

    Example:
        >>> safe_artifact_path("plots/./roc.png")
        'plots/roc.png'
    """
    if not isinstance(name, str):
        raise UnsafePathError(f"artifact name must be a string, not {type(name).__name__}")
    if "\x00" in name:
        raise UnsafePathError(f"artifact name {name!r} contains a NUL byte; remove it")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePathError(f"artifact name {name.encode('utf-8', 'backslashreplace').decode('ascii', 'backslashreplace')!r} is not valid "
                              "Unicode text (it holds a lone surrogate); rename it") from None
    if not name.strip():
        raise UnsafePathError("artifact name is empty; give a relative path such as 'plots/roc.png'")
    if len(name) > _MAX_NAME:
        raise UnsafePathError(f"artifact name is {len(name)} characters long; the limit is {_MAX_NAME}")
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise UnsafePathError(f"artifact name {name!r} is absolute; give a path relative to the run, such as 'roc.png'")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePathError(f"artifact name {name!r} contains '..'; names must stay inside the run's folder")
    if not parts:
        raise UnsafePathError(f"artifact name {name!r} names no file")
    return posixpath.join(*parts)


@runtime_checkable
class ArtifactStore(Protocol):
    """Blobs stored under the sha256 of their bytes.

    Every implementation runs the conformance suite in ``tests/store/test_artifact_conformance.py``.
    """

    uri: str

    def put_bytes(self, data: bytes, durable: bool = True) -> tuple[str, int]:
        """Store bytes; return (sha256, size). Storing the same bytes twice keeps one copy."""
        ...

    def put_file(self, path: str | os.PathLike[str], durable: bool = True) -> tuple[str, int]:
        """Store a file's bytes; return (sha256, size).

        ``durable=False`` skips the fsync: for bytes that can be made again (a pipeline step's
        output), a power cut may then lose them, and reading them back reports it.
        """
        ...

    def get_bytes(self, digest: str) -> bytes:
        """The verified bytes stored under ``digest``."""
        ...

    def download(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Copy a blob to a local file, verifying its hash; a corrupt blob leaves no file behind."""
        ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...

    def iter_blobs(self) -> Iterator[tuple[str, float, int]]:
        """Every stored blob as (sha256, modification time, size)."""
        ...


class ContentStore:
    """Hashing, dedup and verification on top of five storage primitives.

    Subclasses implement ``_exists``, ``_open_read``, ``_write_atomic``, ``_delete`` and
    ``_list``; keys are ``"ab/abcdef…"`` (the first two hex digits fan the blobs out).
    """

    uri: str

    # --- primitives -----------------------------------------------------------------
    def _exists(self, key: str) -> bool:
        raise NotImplementedError

    def _open_read(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def _write_atomic(self, key: str | None, chunks: Iterable[bytes], durable: bool = True) -> tuple[str, int]:
        """Write chunks to a temporary object, then publish it under ``key`` (or under the
        digest of what was written when ``key`` is None). Returns (digest, size)."""
        raise NotImplementedError

    def _delete(self, key: str) -> None:
        raise NotImplementedError

    def _list(self) -> Iterator[tuple[str, float, int]]:
        raise NotImplementedError

    # --- public API -----------------------------------------------------------------
    @staticmethod
    def _key(digest: str) -> str:
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise NotFoundError(f"{digest!r} is not a sha256 digest")
        return f"{digest[:2]}/{digest}"

    def put_bytes(self, data: bytes, durable: bool = True) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        if not self._exists(key):
            self._write_atomic(key, [data], durable)
        return digest, len(data)

    def put_file(self, path: str | os.PathLike[str], durable: bool = True) -> tuple[str, int]:
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                yield from iter(lambda: f.read(CHUNK), b"")

        return self._write_atomic(None, chunks(), durable)

    def _verified_chunks(self, digest: str) -> Iterator[bytes]:
        key = self._key(digest)
        try:
            stream = self._open_read(key)
        except FileNotFoundError:
            raise NotFoundError(f"artifact blob {digest} is not in the artifact store {self.uri}") from None
        h = hashlib.sha256()
        with stream:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                h.update(chunk)
                yield chunk
        if h.hexdigest() != digest:
            raise ArtifactCorruptedError(
                f"artifact blob {digest} in {self.uri} is corrupted: its bytes now hash to "
                f"{h.hexdigest()}; restore it from a backup or log it again"
            )

    def get_bytes(self, digest: str) -> bytes:
        return b"".join(self._verified_chunks(digest))

    def download(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.partial")
        try:
            with open(tmp, "wb") as out:
                for chunk in self._verified_chunks(digest):
                    out.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def exists(self, digest: str) -> bool:
        return self._exists(self._key(digest))

    def delete(self, digest: str) -> None:
        self._delete(self._key(digest))

    def iter_blobs(self) -> Iterator[tuple[str, float, int]]:
        return self._list()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
