"""Data by location — a local file or folder, or an object-store URL — and what changes when it changes.

A pipeline's cache key and the agent's new-data trigger fingerprint a location by what its store says of
it: for local files their size and modification time; for objects their ETag (or version id), size and
modification time; for a folder or prefix the same for every file under it, with their names.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from modelcycle.errors import InvalidInputError

__all__ = ["DATA_SUFFIXES", "data_files", "fingerprint", "is_object_url", "open_file"]

# the schemes of object stores and remote file systems fsspec reaches; http(s) URLs are never fetched
OBJECT_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "hdfs", "memory")
DATA_SUFFIXES = (".parquet", ".csv")


def is_object_url(value: Any) -> bool:
    """True for text such as ``s3://bucket/key``.

    Example:
        >>> is_object_url("s3://team/data/"), is_object_url("data/train.csv"), is_object_url("https://example.com")
        (True, False, False)
    """
    if not isinstance(value, str) or "://" not in value or len(value) > 4096:
        return False
    return value.split("://", 1)[0].lower() in OBJECT_SCHEMES


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise InvalidInputError(f"cannot read {url!r}: {e}; install the fsspec driver for this scheme (s3fs for s3://)") from None


def _stamp(info: dict[str, Any]) -> str:
    """What an object store says changes when an object is rewritten."""
    tag = info.get("ETag") or info.get("etag") or info.get("VersionId") or info.get("md5Hash") or info.get("generation") or ""
    when = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("created") or ""
    return f"{str(tag).strip(chr(34))}\0{info.get('size') or 0}\0{when}"


def fingerprint(location: Any, limit: int = 1_000_000) -> tuple[str, int, str]:
    """``(hash, files, kind)`` of a local file or folder or an object-store URL; kind is ``file``, ``folder`` or
    ``missing`` (then the hash is empty). Hidden files (a name starting with ``.``) are left out of folders.

    Raises:
        InvalidInputError: an object store that cannot be reached or read.
    """
    h = hashlib.sha256()
    if is_object_url(location):
        fs, path = _fs(location)
        fs.invalidate_cache(path)  # what the store says now, not what this process listed before
        try:
            info = fs.info(path)
        except FileNotFoundError:
            return "", 0, "missing"
        except OSError as e:
            raise InvalidInputError(f"cannot reach {location!r}: {e}") from None
        if info.get("type") != "directory":
            h.update(f"{path.rsplit('/', 1)[-1]}\0{_stamp(info)}\n".encode())
            return h.hexdigest(), 1, "file"
        count = 0
        try:
            found = fs.find(path, detail=True)
        except OSError as e:
            raise InvalidInputError(f"cannot list {location!r}: {e}") from None
        base = path.rstrip("/") + "/"
        for name in sorted(found):
            rel = name[len(base):] if name.startswith(base) else name
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            h.update(f"{rel}\0{_stamp(found[name])}\n".encode())
            count += 1
            if count >= limit:
                break
        return h.hexdigest(), count, "folder"
    text = os.fspath(location)
    if os.path.isfile(text):
        st = os.stat(text)
        h.update(f"{os.path.basename(text)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest(), 1, "file"
    if not os.path.isdir(text):
        return "", 0, "missing"
    count = 0
    for base, dirs, files in os.walk(text):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            st = os.stat(os.path.join(base, f))
            h.update(f"{os.path.relpath(os.path.join(base, f), text)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
            if count >= limit:
                return h.hexdigest(), count, "folder"
    return h.hexdigest(), count, "folder"


def data_files(location: Any) -> list[tuple[str, float]]:
    """The ``.parquet`` and ``.csv`` files a data location holds (itself when it is one), oldest first, as
    (path or URL, modification time)."""
    if is_object_url(location):
        fs, path = _fs(location)
        fs.invalidate_cache(path)
        scheme = location.split("://", 1)[0]
        try:
            info = fs.info(path)
            found = {path: info} if info.get("type") != "directory" else fs.find(path, detail=True)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise InvalidInputError(f"cannot list {location!r}: {e}") from None
        out = []
        for name, meta in found.items():
            if name.lower().endswith(DATA_SUFFIXES) and not name.rsplit("/", 1)[-1].startswith("."):
                when = meta.get("LastModified") or meta.get("mtime") or 0
                out.append((f"{scheme}://{name}", when.timestamp() if hasattr(when, "timestamp") else float(when or 0)))
        return sorted(out, key=lambda f: (f[1], f[0]))
    text = os.fspath(location)
    if os.path.isfile(text):
        return [(text, os.stat(text).st_mtime)]
    if not os.path.isdir(text):
        return []
    files = [e for e in os.scandir(text) if e.is_file() and e.name.lower().endswith(DATA_SUFFIXES)]
    return sorted(((e.path, e.stat().st_mtime) for e in files), key=lambda f: (f[1], f[0]))


def open_file(location: str) -> Any:
    """A binary file object for a local path or an object-store URL."""
    if is_object_url(location):
        fs, path = _fs(location)
        return fs.open(path, "rb")
    return open(location, "rb")
