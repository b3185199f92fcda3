"""The prediction log of a modelcycle server as a filesystem (fsspec's interface), so the code that reads and writes the
log on a folder or an object store works unchanged through the server's ``/api/v1/logs/<path>`` routes."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from modelcycle import errors

__all__ = ["ServerLogFileSystem"]


class ServerLogFileSystem(AbstractFileSystem):
    """Paths are the log's own (``predictions/model=<name>/date=…/part-….parquet``); a listing, a read (whole or a
    byte range), a publish (one PUT) and a delete are one request each.

    Example:
        >>> ServerLogFileSystem("http://127.0.0.1:5000").protocol
        'modelcycle'
    """

    protocol = "modelcycle"
    root_marker = ""
    cachable = False  # one per LogRoot, which is kept per URI and token

    def __init__(self, uri: str, token: str | None = None, retry_for: float = 60.0, **kwargs: Any) -> None:
        from modelcycle.store._http import Transport

        super().__init__(**kwargs)
        self.transport = Transport(uri, token, retry_for=retry_for, error=errors.ArtifactError)

    @staticmethod
    def _route(path: str) -> str:
        return "/api/v1/logs/" + urllib.parse.quote(path.strip("/"), safe="/=")

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = path.strip("/")
        try:
            _, body = self.transport.request("GET", self._route(path))
        except errors.NotFoundError:
            raise FileNotFoundError(path) from None
        entries = [{"name": f"{path}/{e['name']}", "size": int(e["size"]), "type": "directory" if e["dir"] else "file"}
                   for e in json.loads(body)]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = path.strip("/")
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        if not parent:
            return {"name": path, "size": 0, "type": "directory"}
        for entry in self.ls(parent):
            if entry["name"] == path:
                return entry
        raise FileNotFoundError(path)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = path.strip("/")
        headers = {}
        if start is not None or end is not None:
            first = start or 0
            if end is not None and end <= first:
                return b""
            headers["Range"] = f"bytes={first}-{'' if end is None else end - 1}"
        try:
            _, body = self.transport.request("GET", self._route(path), headers=headers)
        except errors.NotFoundError:
            raise FileNotFoundError(path) from None
        return body  # type: ignore[return-value]

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        self.transport.request("PUT", self._route(path), bytes(value),
                               {"Content-Type": "application/octet-stream", "Content-Length": str(len(value))})

    def rm_file(self, path: str) -> None:
        try:
            self.transport.request("DELETE", self._route(path))
        except errors.NotFoundError:
            raise FileNotFoundError(path) from None

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, autocommit: bool = True,
              cache_options: Any = None, **kwargs: Any) -> Any:
        if mode != "rb":
            raise NotImplementedError("files of the prediction log are published whole (pipe_file), never opened to write")
        return _ServerFile(self, path.strip("/"), mode, block_size="default" if block_size is None else block_size,
                           cache_options=cache_options, **kwargs)


class _ServerFile(AbstractBufferedFile):
    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.cat_file(self.path, start, end)
