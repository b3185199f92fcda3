"""The artifact store of a modelcycle server, over HTTP: blobs uploaded and downloaded through the server."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from modelcycle.errors import ArtifactError
from modelcycle.store.artifacts.base import ContentStore

__all__ = ["HttpArtifactStore"]


class HttpArtifactStore(ContentStore):
    """Blobs at ``<server>/api/v1/blobs/<sha256>``: uploaded streamed (the server checks the bytes against the
    name), read streamed and verified here as from any other store.

    Example:
        >>> HttpArtifactStore("http://127.0.0.1:5000").uri
        'http://127.0.0.1:5000'
    """

    def __init__(self, uri: str, token: str | None = None, busy_timeout: float = 60.0, **_: Any) -> None:
        from modelcycle.store._http import Transport

        self.uri = uri.rstrip("/")
        self._transport = Transport(self.uri, token, retry_for=busy_timeout, error=ArtifactError)

    @staticmethod
    def _path(key: str) -> str:
        return f"/api/v1/blobs/{key.rsplit('/', 1)[-1]}"

    def _exists(self, key: str) -> bool:
        from modelcycle.errors import NotFoundError

        try:
            self._transport.request("HEAD", self._path(key))
        except NotFoundError:
            return False
        return True

    def _open_read(self, key: str) -> BinaryIO:
        from modelcycle.errors import NotFoundError

        try:
            _, response = self._transport.request("GET", self._path(key), stream=True)
        except NotFoundError:
            raise FileNotFoundError(key) from None
        return response  # type: ignore[return-value]

    def _write_atomic(self, key: str | None, chunks: Iterable[bytes], durable: bool = True) -> tuple[str, int]:
        with tempfile.TemporaryFile() as spool:  # the digest names the upload, so it is known before sending
            h, size = hashlib.sha256(), 0
            for chunk in chunks:
                h.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            digest = h.hexdigest()
            if key is None and self._exists(self._key(digest)):
                return digest, size
            spool.seek(0)
            self._transport.request("PUT", f"/api/v1/blobs/{digest}", spool,
                                    {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                                    rewind=lambda: spool.seek(0))
        return digest, size

    def _delete(self, key: str) -> None:
        self._transport.request("DELETE", self._path(key))

    def _list(self) -> Iterator[tuple[str, float, int]]:
        _, body = self._transport.request("GET", "/api/v1/blobs")
        yield from (tuple(b) for b in json.loads(body))  # type: ignore[arg-type]

    def __del__(self) -> None:
        try:
            self._transport._drop()
        except Exception:
            pass

