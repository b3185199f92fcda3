"""The metadata store's calls as HTTP requests: which calls a server answers, who may make them, and their bodies.

One table, read by both sides: the server answers ``POST /api/v1/store/<call>`` for each call here, and the remote
store (``store.metadata.http``) sends them. Bodies are JSON built by pydantic from the SQL store's own signatures, so a
call's arguments and its answer travel with their types (dataclasses, enums, tuples, NaN and infinities included).
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

__all__ = ["CALLS", "Codec", "codec"]

# call → what it needs: "read", "write" (records of runs, versions, windows, alerts, cycles) or "manage" (moving an
# alias, deleting a run). A call not listed is not answered.
CALLS: dict[str, str] = {
    # experiments and runs
    "get_or_create_experiment": "write",
    "get_experiment": "read",
    "list_experiments": "read",
    "create_run": "write",
    "write": "write",
    "heartbeat": "write",
    "mark_lost": "write",
    "get_run": "read",
    "resolve_run_id": "read",
    "search_runs": "read",
    "search_page": "read",
    "count_runs": "read",
    "run_keys": "read",
    "get_metric_history": "read",
    "metric_histories": "read",
    "metric_keys": "read",
    "artifact_clash": "read",
    "get_environment": "read",
    "delete_run": "manage",
    "referenced_digests": "read",
    # the registry
    "create_model_version": "write",
    "set_model_version_tags": "write",
    "get_model_version": "read",
    "search_model_versions": "read",
    "list_registered_models": "read",
    "get_alias": "read",
    "get_aliases": "read",
    "move_alias": "manage",
    "alias_events": "read",
    "save_verdict": "write",
    "list_verdicts": "read",
    # production: windows, alerts, cycles, the step cache
    "window_get": "read",
    "window_list": "read",
    "window_put": "write",
    "alert_firing": "read",
    "alert_raise": "write",
    "alert_resolve": "write",
    "alert_delivery": "write",
    "alert_list": "read",
    "alert_get": "read",
    "cycle_claim_new": "write",
    "cycle_claim_stale": "write",
    "cycle_update": "write",
    "cycle_get": "read",
    "cycle_list": "read",
    "cache_put": "write",
    "cache_lookup": "read",
}


class Codec:
    """One call's arguments and answer as JSON.

    Example:
        >>> c = codec("get_experiment")
        >>> c.decode_args(c.encode_args(("churn",), {}))
        {'name': 'churn'}
    """

    def __init__(self, name: str) -> None:
        from pydantic import ConfigDict, Field, create_model

        from modelcycle.store.metadata.sql import SqlMetadataStore

        if name not in CALLS:
            raise KeyError(name)
        fn = getattr(SqlMetadataStore, name)
        self.name = name
        self.signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        config = ConfigDict(ser_json_inf_nan="constants", ser_json_bytes="base64", val_json_bytes="base64", extra="forbid")
        fields: dict[str, Any] = {}
        self.var_keyword: str | None = None  # a ``**fields`` parameter travels as one object
        for p in list(self.signature.parameters.values())[1:]:  # without self
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                self.var_keyword = p.name
                fields[p.name] = (dict[str, hints.get(p.name, Any)], Field(default_factory=dict))
                continue
            default = ... if p.default is inspect.Parameter.empty else p.default
            fields[p.name] = (hints.get(p.name, Any), default)
        self.args = create_model(f"{name}_arguments", __config__=config, **fields)
        self.answer = create_model(f"{name}_answer", __config__=config, value=(hints.get("return", Any), None))

    def encode_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        bound = self.signature.bind(None, *args, **kwargs)  # None stands for self
        values = dict(list(bound.arguments.items())[1:])
        return self.args(**values).model_dump_json().encode()

    def decode_args(self, body: bytes) -> dict[str, Any]:
        model = self.args.model_validate_json(body)
        return {name: getattr(model, name) for name in type(model).model_fields}

    def call(self, fn: Any, values: dict[str, Any]) -> Any:
        """``fn`` called with decoded arguments (a ``**fields`` parameter spread out again)."""
        if self.var_keyword is None:
            return fn(**values)
        rest = dict(values)
        more = rest.pop(self.var_keyword) or {}
        clash = set(more) & set(rest)
        if clash:
            from modelcycle.errors import InvalidInputError

            raise InvalidInputError(f"{self.name}: {', '.join(sorted(clash))} given twice")
        return fn(**rest, **more)

    def encode_answer(self, value: Any) -> bytes:
        return self.answer(value=value).model_dump_json().encode()

    def decode_answer(self, body: bytes) -> Any:
        return self.answer.model_validate_json(body).value


@functools.cache
def codec(name: str) -> Codec:
    """The codec of one call (built once per process)."""
    return Codec(name)
