"""Name → implementation tables for every backend, extended by third parties through entry points.

Built-ins are named by dotted path so nothing is imported until it is used. A package adds
its own backend with an entry point in the group ``modelcycle.<kind>``, for example::

    [project.entry-points."modelcycle.metadata_store"]
    mysql = "my_package.store:MySqlStore"
"""

from __future__ import annotations

import importlib
from typing import Any

from modelcycle.errors import ConfigurationError

__all__ = ["BUILTINS", "available", "load", "publish", "subscribe", "unsubscribe"]

BUILTINS: dict[str, dict[str, str]] = {
    # keyed by the URL scheme before any "+driver"
    "metadata_store": {
        "sqlite": "modelcycle.store.metadata.sql:SqlMetadataStore",
        "postgresql": "modelcycle.store.metadata.sql:SqlMetadataStore",
        "http": "modelcycle.store.metadata.http:HttpMetadataStore",
        "https": "modelcycle.store.metadata.http:HttpMetadataStore",
    },
    # "file" for local folders; "fsspec" for every other URL fsspec understands
    "artifact_store": {
        "file": "modelcycle.store.artifacts.local:LocalArtifactStore",
        "fsspec": "modelcycle.store.artifacts.remote:FsspecArtifactStore",
        "http": "modelcycle.store.artifacts.http:HttpArtifactStore",
    },
    # how each kind of model is saved without pickle (see modelcycle.models.flavours)
    "model_flavour": {
        "sklearn": "modelcycle.models.flavours.sklearn:SklearnFlavour",
        "xgboost": "modelcycle.models.flavours.xgboost:XGBoostFlavour",
        "lightgbm": "modelcycle.models.flavours.lightgbm:LightGBMFlavour",
        "pytorch": "modelcycle.models.flavours.pytorch:PyTorchFlavour",
        "python": "modelcycle.models.flavours.python:PythonFlavour",
    },
}


def _entry_points(kind: str) -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=f"modelcycle.{kind}")}


def available(kind: str) -> list[str]:
    """Names of the implementations of ``kind`` that can be loaded.

    Example:
        >>> "sqlite" in available("metadata_store")
        True
    """
    return sorted({*BUILTINS.get(kind, {}), *_entry_points(kind)})


def load(kind: str, name: str) -> Any:
    """Import and return the implementation registered as ``name`` for ``kind``.

    Raises:
        ConfigurationError: nothing is registered under that name.
    """
    target = BUILTINS.get(kind, {}).get(name)
    if target is None:
        ep = _entry_points(kind).get(name)
        if ep is None:
            raise ConfigurationError(
                f"no {kind.replace('_', ' ')} named {name!r}; available: {', '.join(available(kind))}"
            )
        return ep.load()
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


# --- events: how a lower layer tells an upper one that something happened ---------------------
# (validation publishes its reports; tracking, when a run is active, logs them)
_subscribers: dict[str, list[Any]] = {}


def subscribe(event: str, callback: Any) -> None:
    """Call ``callback(payload)`` whenever ``event`` is published (once per callback)."""
    callbacks = _subscribers.setdefault(event, [])
    if callback not in callbacks:
        callbacks.append(callback)


def unsubscribe(event: str, callback: Any) -> None:
    callbacks = _subscribers.get(event, [])
    if callback in callbacks:
        callbacks.remove(callback)


def publish(event: str, payload: Any) -> None:
    """Tell the subscribers of ``event``; a failing subscriber never breaks the publisher.

    Example:
        >>> seen = []
        >>> subscribe("demo.event", seen.append)
        >>> publish("demo.event", 42)
        >>> seen
        [42]
    """
    import warnings

    for callback in list(_subscribers.get(event, [])):
        try:
            callback(payload)
        except Exception as e:  # logging a side record must not fail the main work
            warnings.warn(f"a subscriber of {event!r} failed: {e}", stacklevel=2)
