"""Typed settings: the only module that reads the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelcycle.errors import ConfigurationError

__all__ = ["HOME_DIRNAME", "Settings", "find_home", "redact"]

HOME_DIRNAME = ".modelcycle"


_SECRET_QUERY = re.compile(r"(?i)^(password|passwd|pwd|secret|token|key|access_key|secret_access_key|sslpassword)$")


def redact(uri: str) -> str:
    """``uri`` with any password hidden: in its ``user:password@`` part (whatever the password holds, ``/`` and
    ``@`` included) and in query parameters such as ``?password=…``.

    Example:
        >>> redact("postgresql://ds:secret@db:5432/mc"), redact("/home/ds/.modelcycle/artifacts")
        ('postgresql://ds:***@db:5432/mc', '/home/ds/.modelcycle/artifacts')
        >>> redact("postgresql://ds:pa/ss@db/mc?password=x&sslmode=require")
        'postgresql://ds:***@db/mc?password=***&sslmode=require'
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", scheme):
        return uri
    rest, qsep, query = rest.partition("?")
    at = rest.rfind("@")  # the host follows the last @: a password may hold '/', ':' and '@'
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = f"{user}{':***' if colon else ''}{rest[at:]}"
    if qsep:
        parts = []
        for item in query.split("&"):
            name, eq, _ = item.partition("=")
            parts.append(f"{name}=***" if eq and _SECRET_QUERY.match(name) else item)
        query = "&".join(parts)
    return f"{scheme}://{rest}{qsep}{query}"


def find_home(start: Path) -> Path:
    """Return the nearest ``.modelcycle`` folder at or above ``start``, like git finds ``.git``.

    When none exists, the folder that would be created is ``start/.modelcycle``.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> find_home(d) == d / ".modelcycle"
        True
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / HOME_DIRNAME
        if candidate.is_dir():
            return candidate
    return start / HOME_DIRNAME


def _token(env: Mapping[str, str], name: str) -> str | None:
    """A token from ``env``: printable ASCII without spaces (HTTP trims the spaces around a header's value, so a token
    with one would be taken for another)."""
    value = env.get(name) or None
    if value is not None:
        bad = next((i for i, ch in enumerate(value) if not "!" <= ch <= "~"), None)
        if bad is not None:
            raise ConfigurationError(f"{name} holds a space or an invisible character at position {bad} (as copying it "
                                     "may add); a token is one word of printable characters: remove it")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number; set it to seconds, e.g. {name}={default:g}") from None
    if not value >= minimum:
        raise ConfigurationError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a yes/no value; use 1 or 0")


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name) or ""
    names = tuple(sorted({n.strip() for n in raw.replace(";", ",").split(",") if n.strip()}))
    bad = [n for n in names if not all(part.isidentifier() for part in n.replace(":", ".").split("."))]
    if bad:
        raise ConfigurationError(f"{name}: {', '.join(map(repr, bad))} is not a type name; list them as module.Class, separated by commas")
    return names


@dataclass(frozen=True)
class Settings:
    """Where modelcycle keeps its records and how it behaves; built once by the edges.

    Attributes:
        home: folder holding ``modelcycle.db`` and ``artifacts/`` by default.
        store_uri: SQLAlchemy URL of the metadata store.
        artifact_uri: local folder or fsspec URL of the artifact store.
        experiment: experiment used when a run names none.
        heartbeat_interval: seconds between a running run's heartbeats.
        heartbeat_timeout: a RUNNING run whose last heartbeat is older than this is LOST.
        flush_interval: seconds buffered log calls may wait before reaching the store.
        busy_timeout: seconds a write waits for other writers before giving up.
        capture: record git state, command line and packages with every run.
        sqlite_sync: SQLite's ``synchronous`` level: "normal" survives any process crash;
            "full" also survives a power cut, at the price of an fsync per transaction.
        reproduces: id of the run being reproduced (set by ``modelcycle runs reproduce``).
        trusted_types: type names (``module.Class``) model files may build beyond the library allow-list,
            for every model this process loads (``MODELCYCLE_TRUSTED_TYPES``, comma-separated).

    Example:
        >>> s = Settings.from_env({"MODELCYCLE_HOME": "/tmp/mc"})
        >>> s.store_uri
        'sqlite:////tmp/mc/modelcycle.db'
    """

    home: Path
    store_uri: str
    artifact_uri: str
    experiment: str = "Default"
    heartbeat_interval: float = 10.0
    heartbeat_timeout: float = 60.0
    flush_interval: float = 1.0
    busy_timeout: float = 60.0
    capture: bool = True
    sqlite_sync: str = "normal"
    reproduces: str | None = None
    trusted_types: tuple[str, ...] = ()
    serve_token: str | None = field(default=None, repr=False)  # MODELCYCLE_SERVE_TOKEN: bearer token the model server requires
    tracking_token: str | None = field(default=None, repr=False)  # MODELCYCLE_TRACKING_TOKEN: sent to a modelcycle server
    server_token: str | None = field(default=None, repr=False)  # MODELCYCLE_SERVER_TOKEN: what `modelcycle server` requires

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """Build settings from ``MODELCYCLE_*`` environment variables.

        Args:
            environ: the environment to read; ``os.environ`` when None.
            cwd: where to start looking for ``.modelcycle``; the current directory when None.

        Raises:
            ConfigurationError: a variable holds a value that cannot work.
        """
        env = os.environ if environ is None else environ
        raw_home = env.get("MODELCYCLE_HOME")
        home = Path(raw_home).expanduser().resolve() if raw_home else find_home(cwd or Path.cwd())
        server = (env.get("MODELCYCLE_TRACKING_URI") or "").strip().rstrip("/")
        if server and not server.startswith(("http://", "https://")):
            raise ConfigurationError(f"MODELCYCLE_TRACKING_URI={server!r} must be a modelcycle server's URL, http(s)://host:port")
        # a server keeps both the records and the blobs; a store URI set beside it wins
        store_uri = env.get("MODELCYCLE_STORE_URI") or server or f"sqlite:///{home / 'modelcycle.db'}"
        artifact_uri = env.get("MODELCYCLE_ARTIFACT_URI") or server or str(home / "artifacts")
        if env.get("MODELCYCLE_TRACKING_TOKEN") and not (store_uri.startswith(("http://", "https://"))
                                                         or artifact_uri.startswith(("http://", "https://"))):
            where = "in MODELCYCLE_STORE_URI" if env.get("MODELCYCLE_STORE_URI") else "on this machine"
            raise ConfigurationError("MODELCYCLE_TRACKING_TOKEN is set but MODELCYCLE_TRACKING_URI is not, so nothing would "
                                     "use the token: set MODELCYCLE_TRACKING_URI=http://<server>:<port> to work with the "
                                     f"team server, or unset MODELCYCLE_TRACKING_TOKEN to keep records {where}")
        timeout = _float(env, "MODELCYCLE_HEARTBEAT_TIMEOUT", 60.0, 0.1)
        interval = _float(env, "MODELCYCLE_HEARTBEAT_INTERVAL", min(10.0, timeout / 4), 0.05)
        if interval >= timeout:
            raise ConfigurationError(
                f"MODELCYCLE_HEARTBEAT_INTERVAL ({interval:g}s) must be shorter than "
                f"MODELCYCLE_HEARTBEAT_TIMEOUT ({timeout:g}s), or live runs would be marked LOST"
            )
        sync = (env.get("MODELCYCLE_SQLITE_SYNC") or "normal").strip().lower()
        if sync not in ("normal", "full"):
            raise ConfigurationError(f"MODELCYCLE_SQLITE_SYNC={sync!r} must be 'normal' or 'full'")
        return cls(
            home=home,
            store_uri=store_uri,
            artifact_uri=artifact_uri,
            experiment=env.get("MODELCYCLE_EXPERIMENT") or "Default",
            heartbeat_interval=interval,
            heartbeat_timeout=timeout,
            flush_interval=_float(env, "MODELCYCLE_FLUSH_INTERVAL", 1.0, 0.0),
            busy_timeout=_float(env, "MODELCYCLE_BUSY_TIMEOUT", 60.0, 0.0),
            capture=_bool(env, "MODELCYCLE_CAPTURE", True),
            sqlite_sync=sync,
            reproduces=env.get("MODELCYCLE_REPRODUCES") or None,
            trusted_types=_names(env, "MODELCYCLE_TRUSTED_TYPES"),
            serve_token=_token(env, "MODELCYCLE_SERVE_TOKEN"),
            tracking_token=_token(env, "MODELCYCLE_TRACKING_TOKEN"),
            server_token=_token(env, "MODELCYCLE_SERVER_TOKEN"),
        )

    @classmethod
    def for_home(cls, home: str | os.PathLike[str], **overrides: object) -> Settings:
        """Settings that keep everything in one folder, ignoring the environment.

        Example:
            >>> Settings.for_home("/tmp/x").artifact_uri
            '/tmp/x/artifacts'
        """
        base = cls.from_env({"MODELCYCLE_HOME": str(home)})
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def log_uri(self) -> str:
        """Where the prediction log and the labels are kept: in the artifact store, so every replica, laptop and
        agent given the store's URI reads and writes one log.

        Example:
            >>> Settings.for_home("/tmp/x").log_uri
            '/tmp/x/artifacts'
        """
        return self.artifact_uri

    def shareable(self) -> dict[str, Any]:
        """What may travel to another machine (a Dask worker): where the stores are, with any password
        hidden, and how to log; never a password, a key or the serving token.

        Example:
            >>> s = Settings.for_home("/tmp/x").replace(store_uri="postgresql+psycopg://ds:secret@db/mc")
            >>> s.shareable()["store"]
            'postgresql+psycopg://ds:***@db/mc'
        """
        return {"store": redact(self.store_uri), "artifacts": redact(self.artifact_uri), "experiment": self.experiment,
                "capture": self.capture, "flush_interval": self.flush_interval, "heartbeat_interval": self.heartbeat_interval,
                "heartbeat_timeout": self.heartbeat_timeout, "trusted_types": list(self.trusted_types)}

    @classmethod
    def on_worker(cls, shared: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
        """A worker's settings: its own environment's URIs and credentials, checked to be the client's stores,
        with the client's logging choices.

        Raises:
            ConfigurationError: the worker's environment names other stores than the client's.
        """
        mine = cls.from_env(environ)
        if redact(mine.store_uri) != shared["store"] or redact(mine.artifact_uri) != shared["artifacts"]:
            raise ConfigurationError(
                f"this Dask worker uses the store {redact(mine.store_uri)} and artifacts {redact(mine.artifact_uri)}, the client "
                f"{shared['store']} and {shared['artifacts']}: start the worker with MODELCYCLE_STORE_URI and "
                "MODELCYCLE_ARTIFACT_URI set as on the client (and the object store's credentials, e.g. AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL) in its environment")
        return replace(mine, experiment=shared["experiment"], capture=shared["capture"], flush_interval=shared["flush_interval"],
                       heartbeat_interval=shared["heartbeat_interval"], heartbeat_timeout=shared["heartbeat_timeout"],
                       trusted_types=tuple(shared["trusted_types"]))

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]
