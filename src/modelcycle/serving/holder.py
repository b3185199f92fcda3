"""The model a server answers with: loaded by URI, swapped atomically when its alias moves."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelcycle.registry.uri import parse_model_uri

if TYPE_CHECKING:
    from modelcycle.models import LoadedModel
    from modelcycle.registry import Registry

__all__ = ["ModelHolder"]

log = logging.getLogger("modelcycle.serving")


class ModelHolder:
    """Holds the served model. ``current`` is one reference, replaced in one assignment: a request
    that picked up the old model finishes on it, the next one gets the new one.

    For ``models:/name@alias`` a watcher thread resolves the alias every ``poll`` seconds; a new
    version is loaded and verified in the background and swapped in only if that succeeds. A
    version whose package is refused (damaged, unsafe, not a model) is remembered, counted in
    ``failures`` and not tried again. A load that failed for another reason (the store or the
    machine: a read error, memory, an interpreter error) is tried again after a pause that doubles,
    up to ``RETRIES`` times, and only then counted as failed. A load the store refused or could not answer (a
    role the server's token lacks, a record it may not see, the store out of reach) is counted as failed at once —
    the version is not served — and tried again after a pause that doubles up to five minutes, for good: once the
    role is granted or the store is back, the version is served without a restart.
    """

    RETRIES = 5

    def __init__(self, registry: Registry, uri: str, trust: bool = False, poll: float = 1.0, trusted_types: Sequence[str] = ()):
        self.registry = registry
        self.uri = uri
        self.trust = trust
        self.trusted_types = tuple(trusted_types)
        self.poll = poll
        self.ref = parse_model_uri(uri)
        self.current: LoadedModel = registry.load_model(uri, trust, self.trusted_types)
        self.failures = 0
        self.swaps = 0
        self.last_error: str | None = None
        self._bad: set[str] = set()
        self._retry: dict[str, tuple[int, float]] = {}  # hash → (failed attempts, when to try again)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        if self.ref.kind == "models" and self.ref.name:
            return self.ref.name
        return self.ref.path.rsplit("/", 1)[-1] if self.ref.path else "model"

    @property
    def version(self) -> int | None:
        v = self.current.version
        return v.version if v is not None else None

    def start(self) -> None:
        if self.ref.kind == "models" and (self.ref.alias or self.ref.latest) and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="modelcycle-alias-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """Look at the alias once; swap when it moved to a version that loads. Returns True on a swap."""
        try:
            _, version = self.registry.resolve(self.uri)
        except Exception as e:  # the store is briefly unreachable: keep serving
            self.last_error = f"cannot resolve {self.uri}: {e}"
            return False
        if version is None or version.hash == self.current.hash or version.hash in self._bad:
            return False
        attempts, due = self._retry.get(version.hash, (0, 0.0))
        if time.monotonic() < due:
            return False
        try:
            loaded = self.registry.load_model(version.uri, self.trust, self.trusted_types)
        except (Exception, SystemExit) as e:  # whatever a version does while loading, the server keeps serving (and says why)
            from modelcycle.errors import ArtifactCorruptedError, ArtifactError, ModelcycleError, NotFoundError, PermissionDeniedError, StoreError

            reason = str(e) if isinstance(e, Exception) else f"it called sys.exit({e})"
            if isinstance(e, (PermissionDeniedError, NotFoundError, StoreError, ArtifactError)) and not isinstance(e, ArtifactCorruptedError):
                pause = min(300.0, self.poll * 2 ** (attempts + 1))
                self._retry[version.hash] = (attempts + 1, time.monotonic() + pause)
                if attempts == 0:
                    self.failures += 1  # not served: a failed swap, as the agent watching this server must see
                self.last_error = (f"version {version.version} of {version.name} did not load and is not served: {reason}; "
                                   f"trying again in {pause:g} s (the store refused or did not answer: a role, not the version)")
                log.error(self.last_error)
                return False
            if isinstance(e, Exception) and not isinstance(e, ModelcycleError) and attempts + 1 < self.RETRIES:
                pause = min(60.0, self.poll * 2 ** (attempts + 1))
                self._retry[version.hash] = (attempts + 1, time.monotonic() + pause)
                self.last_error = (f"version {version.version} of {version.name} did not load ({type(e).__name__}: {reason}); "
                                   f"trying again in {pause:g} s")
                log.warning(self.last_error)
                return False
            self._retry.pop(version.hash, None)
            self._bad.add(version.hash)
            self.failures += 1
            self.last_error = f"version {version.version} of {version.name} did not load and is not served: {reason}"
            log.error(self.last_error)
            return False
        self._retry.pop(version.hash, None)
        self.current = loaded  # one assignment: atomic for readers
        self.swaps += 1
        log.info("now serving %s version %s", version.name, version.version)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.check()
            except BaseException as e:  # the watcher never dies: a server that stops following its alias would say nothing
                self.last_error = f"checking {self.uri} failed: {type(e).__name__}: {e}"
                log.error(self.last_error)

    def describe(self) -> dict[str, Any]:
        m = self.current
        return {"name": self.name, "version": self.version, "uri": self.uri, "flavour": m.flavour, "sha256": m.hash,
                "swaps": self.swaps, "failed_swaps": self.failures, "last_error": self.last_error, "checked_at": time.time()}
