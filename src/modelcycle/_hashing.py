"""sha256 helpers shared by the stores and fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, BinaryIO

__all__ = ["CHUNK", "hash_json", "sha256_bytes", "sha256_file", "sha256_stream"]

CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes.

    Example:
        >>> sha256_bytes(b"")[:8]
        'e3b0c442'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO) -> str:
    """Hex sha256 of everything left in a binary stream, read in 1 MiB chunks."""
    h = hashlib.sha256()
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return sha256_stream(f)


def hash_json(obj: Any) -> str:
    """sha256 of a value's canonical JSON (sorted keys, no spaces): equal values, equal hashes.

    Example:
        >>> hash_json({"b": 1, "a": 2}) == hash_json({"a": 2, "b": 1})
        True
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_bytes(text.encode())
