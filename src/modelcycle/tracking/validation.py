"""Checks on keys and values, done when a log call is made so bad input never reaches the buffer."""

from __future__ import annotations

import math
import re
from typing import Any

from modelcycle._text import check_text
from modelcycle.errors import InvalidKeyError, InvalidValueError

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PARAM_LENGTH",
    "MAX_TAG_LENGTH",
    "check_key",
    "check_step",
    "check_text",
    "metric_value",
    "param_value",
    "tag_value",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
_KEY = re.compile(r"^[A-Za-z0-9_.\-/ ]+$")
_BAD = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def check_key(key: Any, what: str) -> str:
    """Return ``key`` if it is a valid metric, param or tag name.

    Keys are 1 to 250 characters from letters, digits, ``_ . - /`` and spaces.

    Raises:
        InvalidKeyError: naming the key and the first offending character.

    Example:
        >>> check_key("val/loss", "metric")
        'val/loss'
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"{what} key must be a string, not {type(key).__name__} ({key!r})")
    if not key or not key.strip():
        raise InvalidKeyError(f"{what} key is empty; give it a name such as 'accuracy'")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(f"{what} key {key[:40]!r}… is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}")
    if not _KEY.match(key):
        bad = _BAD.search(key)
        ch = bad.group() if bad else "?"
        raise InvalidKeyError(
            f"{what} key {key!r} contains {ch!r} at position {bad.start() if bad else 0}; "
            "keys may only use letters, digits, '_', '.', '-', '/' and spaces"
        )
    if key.startswith("/") or key.endswith("/") or "//" in key or key.strip() != key:
        raise InvalidKeyError(f"{what} key {key!r} must not start or end with '/' or spaces, nor contain '//'")
    return key


def metric_value(key: str, value: Any) -> float:
    """A metric value as a float; NaN and ±inf are kept as they are.

    Raises:
        InvalidValueError: the value is not a number (strings are refused, even "0.5").

    Example:
        >>> metric_value("auc", 1)
        1.0
    """
    if isinstance(value, float):
        return value
    if value is None or isinstance(value, str | bytes | bytearray | complex):
        raise InvalidValueError(
            f"metric {key!r} got {value!r} ({type(value).__name__}); a metric must be a number — "
            "log text with set_tag or log_param instead"
        )
    try:
        return float(value)
    except OverflowError:
        raise InvalidValueError(f"metric {key!r} got an integer too large for a float: {str(value)[:30]}…") from None
    except (TypeError, ValueError):
        raise InvalidValueError(
            f"metric {key!r} got a {type(value).__name__}, which is not a single number; "
            "log one number per call (use log_table for arrays)"
        ) from None


def check_step(key: str, step: Any) -> int:
    """A metric step as an int."""
    if isinstance(step, bool) or not isinstance(step, int):
        try:
            as_int = int(step)
        except (TypeError, ValueError, OverflowError):
            raise InvalidValueError(f"step of metric {key!r} must be an integer, got {step!r}") from None
        if as_int != step:
            raise InvalidValueError(f"step of metric {key!r} must be an integer, got {step!r}")
        step = as_int
    if not -(2**63) <= step < 2**63:
        raise InvalidValueError(f"step of metric {key!r} is out of range: {step}")
    return step


def _text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e16:
        text = repr(value)
    else:
        text = str(value)
    return check_text(text, "a value")


def param_value(key: str, value: Any) -> str:
    """A param value as text (params are stored as strings, as in MLflow).

    Raises:
        InvalidValueError: the text is longer than 6,000 characters.

    Example:
        >>> param_value("C", 0.5)
        '0.5'
    """
    text = _text(value)
    if len(text) > MAX_PARAM_LENGTH:
        raise InvalidValueError(
            f"param {key!r} is {len(text)} characters long; the limit is {MAX_PARAM_LENGTH} — "
            "log long values as an artifact with log_text or log_dict"
        )
    return text


def tag_value(key: str, value: Any) -> str:
    """A tag value as text, at most 8,000 characters."""
    text = _text(value)
    if len(text) > MAX_TAG_LENGTH:
        raise InvalidValueError(f"tag {key!r} is {len(text)} characters long; the limit is {MAX_TAG_LENGTH}")
    return text
