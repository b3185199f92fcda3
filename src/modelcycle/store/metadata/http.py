"""The metadata store of a modelcycle server, over HTTP: the same calls as the SQL store, sent to the server."""

from __future__ import annotations

from typing import Any

from modelcycle.store.rpc import CALLS, codec

__all__ = ["HttpMetadataStore"]

PAGE = 10_000  # runs a server answers per search call


class HttpMetadataStore:
    """Every metadata store call as ``POST <server>/api/v1/store/<call>``; it runs the same conformance suite as the
    SQL stores. The server's token comes from ``MODELCYCLE_TRACKING_TOKEN`` (through the settings).

    Example:
        >>> store = HttpMetadataStore("http://127.0.0.1:5000")
        >>> store.uri
        'http://127.0.0.1:5000'
    """

    def __init__(self, uri: str, token: str | None = None, busy_timeout: float = 60.0, **_: Any) -> None:
        from modelcycle.store._http import Transport

        self.uri = uri.rstrip("/")
        self.display_uri = self.uri
        self._transport = Transport(self.uri, token, retry_for=busy_timeout)
        self._experiments: dict[str, Any] = {}  # by name: an experiment's id and name never change

    def get_experiment(self, name: str) -> Any:
        found = self._experiments.get(name)
        if found is None:
            found = self._experiments[name] = self._call("get_experiment", (name,), {})
        return found

    def write(self, batch: Any) -> None:
        """One call per batch; a batch of very many metric points goes in parts (the server takes calls of at most
        64 MB), the runs and everything else with the first."""
        from dataclasses import replace

        step = 200_000
        if len(batch.metrics) <= step:
            self._call("write", (batch,), {})
            return
        metrics = batch.metrics
        self._call("write", (replace(batch, metrics=metrics[:step]),), {})
        for i in range(step, len(metrics), step):
            self._call("write", (type(batch)(metrics=metrics[i:i + step]),), {})

    def search_page(self, experiments: list[str] | None = None, filter: str | None = None, order_by: list[str] | None = None,
                    limit: int | None = 100, offset: int = 0) -> Any:
        """A server answers at most PAGE runs per call: more (or all, ``limit=None``) are asked for page by page."""
        from modelcycle.store.metadata.base import RunPage

        if limit is not None and limit <= PAGE:
            return self._call("search_page", (experiments, filter, order_by, limit, offset), {})
        rows: list[Any] = []
        params: list[Any] = []
        metrics: list[Any] = []
        tags: list[Any] = []
        while limit is None or len(rows) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(rows))
            page = self._call("search_page", (experiments, filter, order_by, size, offset + len(rows)), {})
            rows += page.rows
            params += page.params
            metrics += page.metrics
            tags += page.tags
            if len(page.rows) < size:
                break
        return RunPage(rows, params, metrics, tags)

    def search_runs(self, experiments: list[str] | None = None, filter: str | None = None, order_by: list[str] | None = None,
                    limit: int | None = 100, offset: int = 0) -> list[Any]:
        return self.search_page(experiments, filter, order_by, limit, offset).runs()

    def get_or_create_experiment(self, name: str) -> Any:
        found = self._experiments.get(name)
        if found is None:
            found = self._experiments[name] = self._call("get_or_create_experiment", (name,), {})
        return found

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        c = codec(name)
        _, body = self._transport.request("POST", f"/api/v1/store/{name}", c.encode_args(args, kwargs),
                                          {"Content-Type": "application/json"})
        return c.decode_answer(body)  # type: ignore[arg-type]

    def close(self) -> None:
        self._transport._drop()

    def __repr__(self) -> str:
        return f"HttpMetadataStore({self.uri!r})"


def _method(name: str) -> Any:
    def call(self: HttpMetadataStore, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    return call


for _name in CALLS:
    if _name not in HttpMetadataStore.__dict__:
        setattr(HttpMetadataStore, _name, _method(_name))
