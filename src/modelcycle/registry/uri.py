"""Model URIs: ``runs:/<run_id>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/<name>/latest``,
the same without ``models:/`` (``churn@champion``, ``churn/3``), or a local package folder.

Every command and function that names a model parses it here, with :func:`parse_model_uri`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from modelcycle.errors import InvalidInputError

__all__ = ["ALIAS_RE", "MODEL_FORMS", "NAME_RE", "ModelRef", "check_alias", "check_model_name", "parse_model_uri"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,249}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_RESERVED = {"latest"}


def check_model_name(name: str) -> str:
    """A registered model name: letters, digits, ``_``, ``.``, ``-``; starting with a letter or digit.

    Example:
        >>> check_model_name("churn-v2")
        'churn-v2'
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInputError(
            f"{name!r} is not a valid model name: use letters, digits, '_', '.' and '-', starting with a letter or digit "
            "(up to 250 characters)"
        )
    return name


def check_alias(alias: str) -> str:
    """An alias: a letter, then letters, digits, ``_`` or ``-`` (up to 64); not ``latest`` or ``v<digits>``.

    Example:
        >>> check_alias("champion")
        'champion'
    """
    if not isinstance(alias, str) or not ALIAS_RE.match(alias) or alias.lower() in _RESERVED or re.fullmatch(r"[vV]\d+", alias):
        raise InvalidInputError(
            f"{alias!r} is not a valid alias: start with a letter, then letters, digits, '_' or '-' (up to 64 characters); "
            "'latest' and 'v<number>' are reserved"
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI. ``kind`` is ``runs``, ``models`` or ``path`` (a local package folder)."""

    kind: str
    run_id: str | None = None
    path: str | None = None
    name: str | None = None
    version: int | None = None
    alias: str | None = None
    latest: bool = False

    def __str__(self) -> str:
        if self.kind == "runs":
            return f"runs:/{self.run_id}/{self.path}"
        if self.kind == "models":
            suffix = f"@{self.alias}" if self.alias else "/latest" if self.latest else f"/{self.version}"
            return f"models:/{self.name}{suffix}"
        return str(self.path)


def parse_model_uri(uri: str, local: bool = True) -> ModelRef:
    """Parse a model URI: ``runs:/<run>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``, or the same
    without ``models:/`` (``churn@champion``, ``churn/3``, ``churn/latest``); anything else is a local package folder.

    A local folder that exists wins over the short forms (a folder named ``churn@champion`` is that folder).

    Args:
        local: whether a local package folder may be meant; when False, a text that names no registered model is an error.

    Example:
        >>> parse_model_uri("models:/churn@champion").alias
        'champion'
        >>> parse_model_uri("churn/3").version
        3
        >>> parse_model_uri("runs:/0a1b/model").path
        'model'
    """
    forms = "runs:/<run_id>/model, models:/<name>/<version>, models:/<name>@<alias>, <name>@<alias> or <name>/<version>"
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInputError(f"a model URI is empty; use {forms}")
    uri = uri.strip()
    if uri.startswith("runs:"):
        rest = uri[len("runs:"):].lstrip("/")
        run_id, _, path = rest.partition("/")
        if not run_id or not path:
            raise InvalidInputError(f"{uri!r}: a runs URI names a run and a path, such as runs:/<run_id>/model")
        return ModelRef("runs", run_id=run_id, path=path.strip("/"))
    if uri.startswith("models:"):
        return _registered(uri, uri[len("models:"):].lstrip("/"))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri):
        raise InvalidInputError(f"{uri!r}: model URIs start with runs:/ or models:/ (or are a local folder)")
    if local and os.path.exists(uri):
        return ModelRef("path", path=uri)
    short = _SHORT.fullmatch(uri)
    if short is not None and NAME_RE.match(short.group(1)):
        return _registered(uri, uri)
    if not local:
        raise InvalidInputError(f"{uri!r} names no model version; use {forms}")
    return ModelRef("path", path=uri)


_SHORT = re.compile(r"([^@/]+)(?:@[^@/]+|/(?:\d+|latest))")  # churn@champion, churn/3, churn/latest
MODEL_FORMS = "NAME@ALIAS, NAME/VERSION, models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN/model or a package folder"


def _registered(uri: str, rest: str) -> ModelRef:
    """``<name>@<alias>``, ``<name>/<version>`` or ``<name>/latest`` (what follows ``models:/``)."""
    if "@" in rest:
        name, _, alias = rest.partition("@")
        return ModelRef("models", name=check_model_name(name), alias=check_alias(alias))
    name, _, version = rest.partition("/")
    check_model_name(name)
    if version == "latest":
        return ModelRef("models", name=name, latest=True)
    if not (version.isascii() and version.isdigit() and len(version) <= 12) or int(version) < 1:  # not '²', not 10**30
        raise InvalidInputError(
            f"{uri!r}: give a version number, 'latest' or an alias, such as {name}/3 or {name}@champion"
        )
    return ModelRef("models", name=name, version=int(version))
