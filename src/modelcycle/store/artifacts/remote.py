"""Artifact blobs on any fsspec filesystem (s3://, gs://, az://, memory://, …)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from modelcycle._hashing import CHUNK
from modelcycle.errors import ArtifactError, ConfigurationError
from modelcycle.store.artifacts.base import ContentStore

__all__ = ["FsspecArtifactStore"]

# Below this size a blob is written with one PUT and no existence check first: writing identical bytes again
# under their own digest changes nothing, and one request is cheaper than asking.
SMALL = 1 << 20
RANGE = 8 << 20  # bytes per read of a blob


class FsspecArtifactStore(ContentStore):
    """Content-addressed blobs under an fsspec URL.

    A blob's key is the digest of its bytes, so it is written once, straight to its final name: an
    object store's PUT is atomic (a reader sees the whole object or none), and no temporary name, copy or
    delete is needed. A small blob costs one request; a large one a check (a one-byte read) and, when it is
    new, its upload.

    Example:
        >>> store = FsspecArtifactStore("memory://doctest-artifacts")
        >>> store.get_bytes(store.put_bytes(b"x")[0])
        b'x'
    """

    def __init__(self, url: str):
        try:
            import fsspec
        except ImportError:  # pragma: no cover - fsspec is a core dependency
            raise ConfigurationError("artifact URLs other than local folders need fsspec: pip install fsspec") from None
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as e:
            raise ConfigurationError(
                f"cannot open artifact store {url!r}: {e}; install the fsspec driver for this scheme (e.g. s3fs for s3://)"
            ) from None
        self.uri = url
        self.root = root.rstrip("/")
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self._needs_folders = protocol in ("file", "local")  # object stores have no folders to make

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _exists(self, key: str) -> bool:
        try:
            self.fs.cat_file(self._path(key), start=0, end=1)  # one ranged GET; info() may also list the prefix
            return True
        except FileNotFoundError:
            return False
        except OSError as e:
            raise ArtifactError(f"cannot reach the artifact store {self.uri}: {e}") from None

    def _open_read(self, key: str) -> BinaryIO:
        return self.fs.open(self._path(key), "rb")

    def _verified_chunks(self, digest: str) -> Iterator[bytes]:
        """The blob in ranged reads of ``RANGE`` bytes: a blob smaller than that is one request, with no HEAD first."""
        from modelcycle.errors import ArtifactCorruptedError, NotFoundError

        path = self._path(self._key(digest))
        h = hashlib.sha256()
        start = 0
        while True:
            try:
                chunk = self.fs.cat_file(path, start=start, end=start + RANGE)
            except FileNotFoundError:
                if start == 0:
                    raise NotFoundError(f"artifact blob {digest} is not in the artifact store {self.uri}") from None
                chunk = b""
            except OSError as e:
                raise ArtifactError(f"cannot read from the artifact store {self.uri}: {e}") from None
            h.update(chunk)
            if chunk:
                yield chunk
            start += len(chunk)
            if len(chunk) < RANGE:
                break
        if h.hexdigest() != digest:
            raise ArtifactCorruptedError(f"artifact blob {digest} in {self.uri} is corrupted: its bytes now hash to "
                                         f"{h.hexdigest()}; restore it from a backup or log it again")

    def _put(self, key: str, data: bytes | None = None, source: str | os.PathLike[str] | None = None) -> None:
        path = self._path(key)
        try:
            target = path
            if self._needs_folders:  # a file system: write aside, then rename, so no reader sees half a file
                self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                target = f"{path}.{uuid.uuid4().hex}.tmp"
            if data is not None:
                self.fs.pipe_file(target, data)
            else:
                self.fs.put_file(os.fspath(source), target)  # type: ignore[arg-type]
            if target != path:
                self.fs.mv(target, path)
        except OSError as e:
            raise ArtifactError(f"cannot write to the artifact store {self.uri}: {e}") from None

    def put_bytes(self, data: bytes, durable: bool = True) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest)
        if len(data) < SMALL or not self._exists(key):
            self._put(key, data=data)
        return digest, len(data)

    def put_file(self, path: str | os.PathLike[str], durable: bool = True) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:
            small = b""
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
                size += len(chunk)
                if size < SMALL:
                    small += chunk
        digest = h.hexdigest()
        key = self._key(digest)
        if size < SMALL:
            self._put(key, data=small)
        elif not self._exists(key):
            self._put(key, source=path)
        return digest, size

    def _write_atomic(self, key: str | None, chunks: Iterable[bytes], durable: bool = True) -> tuple[str, int]:
        data = b"".join(chunks)
        digest, size = self.put_bytes(data, durable)
        if key is not None and key != self._key(digest):
            self._put(key, data=data)
        return digest, size

    def _delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def _list(self) -> Iterator[tuple[str, float, int]]:
        try:
            found = self.fs.find(self.root, withdirs=False, detail=True)
        except FileNotFoundError:
            return
        for info in found.values():
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            parent = info["name"].rstrip("/").rsplit("/", 2)[-2]
            if len(parent) != 2 or len(name) != 64:
                continue
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or time.time()
            if hasattr(mtime, "timestamp"):
                mtime = mtime.timestamp()
            yield name, float(mtime), int(info.get("size") or 0)
