"""The only code that talks to the metadata database or the artifact storage."""

from __future__ import annotations

__all__ = ["open_artifact_store", "open_metadata_store"]


def open_metadata_store(uri: str, **options):
    """Open the metadata store named by a SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``) or a modelcycle
    server's (``http://host:port``).

    Example:
        >>> import tempfile, os
        >>> store = open_metadata_store("sqlite:///" + os.path.join(tempfile.mkdtemp(), "m.db"))
        >>> store.list_experiments()
        []
    """
    from modelcycle import plugins
    from modelcycle.errors import ConfigurationError

    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if not scheme:
        raise ConfigurationError(
            f"store URI {uri!r} has no scheme; use sqlite:///path/to/modelcycle.db or postgresql+psycopg://user@host/db"
        )
    return plugins.load("metadata_store", scheme)(uri, **options)


def open_artifact_store(uri: str, **options):
    """Open the artifact store at a local folder, any fsspec URL (``s3://bucket/prefix``) or a modelcycle server.

    Example:
        >>> import tempfile
        >>> store = open_artifact_store(tempfile.mkdtemp())
        >>> store.get_bytes(store.put_bytes(b"hi")[0])
        b'hi'
    """
    from modelcycle import plugins

    if "://" not in uri or uri.startswith("file://"):
        return plugins.load("artifact_store", "file")(uri.removeprefix("file://"))
    if uri.startswith(("http://", "https://")):  # a modelcycle server, which keeps the blobs
        return plugins.load("artifact_store", "http")(uri, **options)
    return plugins.load("artifact_store", "fsspec")(uri)
