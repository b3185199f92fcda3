"""Artifact blobs on any fsspec filesystem (s3://, gs://, az://, memory://, …)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from modelcycle.errors import ArtifactError, ConfigurationError
from modelcycle.store.artifacts.base import ContentStore

__all__ = ["FsspecArtifactStore"]


class FsspecArtifactStore(ContentStore):
    """Content-addressed blobs under an fsspec URL.

    Objects are first written under ``<url>/.tmp/`` and then moved into place, so a reader
    never sees half an object.

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

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def _open_read(self, key: str) -> BinaryIO:
        return self.fs.open(self._path(key), "rb")

    def _write_atomic(self, key: str | None, chunks: Iterable[bytes], durable: bool = True) -> tuple[str, int]:
        tmp = self._path(f".tmp/{uuid.uuid4().hex}")
        h = hashlib.sha256()
        size = 0
        try:
            self.fs.makedirs(self._path(".tmp"), exist_ok=True)
            with self.fs.open(tmp, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
            digest = h.hexdigest()
            key = key or self._key(digest)
            final = self._path(key)
            if not self.fs.exists(final):
                self.fs.makedirs(self._path(key.split("/")[0]), exist_ok=True)
                self.fs.mv(tmp, final)
            return digest, size
        except OSError as e:
            raise ArtifactError(f"cannot write to the artifact store {self.uri}: {e}") from None
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def _delete(self, key: str) -> None:
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path)

    def _list(self) -> Iterator[tuple[str, float, int]]:
        if not self.fs.exists(self.root):
            return
        for info in self.fs.find(self.root, withdirs=False, detail=True).values():
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            parent = info["name"].rstrip("/").rsplit("/", 2)[-2]
            if len(parent) != 2 or len(name) != 64:
                continue
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or time.time()
            if hasattr(mtime, "timestamp"):
                mtime = mtime.timestamp()
            yield name, float(mtime), int(info.get("size") or 0)
