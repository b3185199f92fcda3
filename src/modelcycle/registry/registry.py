"""The model registry: versions of packaged models, aliases that move only with a record, safe loading."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle.entities import AliasEvent, LoggedModel, ModelVersion, StoredVerdict
from modelcycle.errors import ArtifactCorruptedError, GateError, InvalidInputError, ModelIntegrityError, NotFoundError
from modelcycle.models.package import MANIFEST, LoadedModel, Manifest, load_package
from modelcycle.models.trust import Trust
from modelcycle.registry.uri import MODEL_FORMS, ModelRef, check_alias, check_model_name, parse_model_uri
from modelcycle.store.artifacts.base import safe_artifact_path

if TYPE_CHECKING:
    from modelcycle.tracking.client import Client

__all__ = ["Registry", "current_actor"]

_CACHE_SIZE = 8


def current_actor() -> str:
    """Who is making a change, for the audit log: ``user@host``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


class Registry:
    """Registered models on top of a tracking Client's stores.

    Example:
        >>> import modelcycle as mc, tempfile
        >>> from sklearn.linear_model import LinearRegression
        >>> client = mc.Client(mc.Settings.for_home(tempfile.mkdtemp(), capture=False))
        >>> with client.start_run(experiment="demo"):
        ...     logged = client.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0]), input_example=[[0.5]])
        >>> registry = Registry(client)
        >>> registry.register_model(logged.uri, "doubler").version
        1
        >>> registry.set_alias("doubler", "champion", 1, reason="first model").to_version
        1
        >>> round(float(registry.load_model("models:/doubler@champion").predict({"x0": [3.0]})[0]), 6)
        6.0
    """

    def __init__(self, client: Client):
        self.client = client
        self._cache: OrderedDict[tuple[str, bool], LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def store(self) -> Any:
        return self.client.store

    # --- versions -------------------------------------------------------------------------
    def register_model(self, uri: str | LoggedModel, name: str, description: str | None = None,
                       tags: Mapping[str, Any] | None = None) -> ModelVersion:
        """Register the package at ``uri`` (``runs:/…``, or another version's ``models:/…``) as the next version of ``name``."""
        check_model_name(name)
        text = uri.uri if isinstance(uri, LoggedModel) else uri
        ref = parse_model_uri(text)
        if ref.kind == "path":
            raise InvalidInputError(f"{text!r}: register a model logged in a run (runs:/<run_id>/model), not a local folder")
        if ref.kind == "models":
            source = self.get_model_version(ref.name or "", self._version_spec(ref))
            run_id, path = source.run_id, source.artifact_path
        else:
            run_id, path = ref.run_id or "", safe_artifact_path(ref.path or "")
        run = self.client.get_run(run_id)
        manifest, _ = self._run_package(run, path)
        tag_values = {str(k): str(v) for k, v in (tags or {}).items()}
        return self.store.create_model_version(
            name, run_id=run.id, source=f"runs:/{run.id}/{path}", artifact_path=path, hash=manifest.hash,
            flavour=manifest.flavour, created_at=time.time(), created_by=current_actor(), description=description,
            tags=tag_values)

    @staticmethod
    def _version_spec(ref: ModelRef) -> int | str:
        return ref.alias if ref.alias else "latest" if ref.latest else int(ref.version or 0)

    def get_model_version(self, name: str, version_or_alias: int | str = "latest") -> ModelVersion:
        """A version by number, by alias, or the newest (``"latest"``)."""
        check_model_name(name)
        if isinstance(version_or_alias, bool):
            raise InvalidInputError("give a version number or an alias, not a boolean")
        if isinstance(version_or_alias, int) or (isinstance(version_or_alias, str) and version_or_alias.isdigit()):
            return self.store.get_model_version(name, int(version_or_alias))
        if version_or_alias == "latest":
            found = self.store.search_model_versions(f"name = '{name}'", limit=1)
            if not found:
                raise NotFoundError(f"no registered model named {name!r}; `modelcycle models ls` lists them")
            return found[0]
        alias = check_alias(str(version_or_alias))
        version = self.store.get_alias(name, alias)
        if version is None:
            aliases = self.store.get_aliases(name)
            if not aliases and not self.store.search_model_versions(f"name = '{name}'", limit=1):
                raise NotFoundError(f"no registered model named {name!r}; `modelcycle models ls` lists them")
            raise NotFoundError(f"model {name!r} has no alias {alias!r}; it has: {', '.join(aliases) or 'none'}")
        return self.store.get_model_version(name, version)

    def search_model_versions(self, filter: str | None = None) -> list[ModelVersion]:
        """Versions matching ``filter`` (all when None), e.g. ``"name = 'churn' and tags.team = 'risk'"``."""
        return self.store.search_model_versions(filter)

    def set_model_version_tags(self, name: str, version: int, tags: Mapping[str, Any]) -> None:
        self.store.set_model_version_tags(check_model_name(name), int(version), {str(k): str(v) for k, v in tags.items()})

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model with its number of versions, latest version and aliases."""
        return self.store.list_registered_models()

    # --- aliases --------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int, reason: str | None = None) -> AliasEvent:
        """Point ``name@alias`` at ``version``; the change is written to the audit log."""
        check_model_name(name)
        check_alias(alias)
        return self.store.move_alias(name, alias, _version_number(version), action="set", actor=current_actor(),
                                     at=time.time(), reason=reason)

    def delete_alias(self, name: str, alias: str, reason: str | None = None) -> AliasEvent:
        check_model_name(name)
        check_alias(alias)
        return self.store.move_alias(name, alias, None, action="delete", actor=current_actor(), at=time.time(), reason=reason)

    def history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """The audit log of ``name`` (or of one alias), oldest first."""
        check_model_name(name)
        if alias is not None:
            check_alias(alias)
        if not self.store.search_model_versions(f"name = '{name}'", limit=1):
            raise NotFoundError(f"no registered model named {name!r}; `modelcycle models ls` lists them")
        return self.store.alias_events(name, alias)

    def rollback(self, name: str, alias: str = "champion", reason: str | None = None) -> AliasEvent:
        """Move ``name@alias`` back to the version it pointed at before its latest move (itself an audited event).

        Rollbacks undo one move each, so two rollbacks in a row go back two moves.
        """
        check_model_name(name)
        check_alias(alias)
        stack: list[int | None] = []
        for event in self.store.alias_events(name, alias):
            if event.action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(event.to_version)
        current = self.store.get_alias(name, alias)
        if len(stack) < 2 or stack[-2] is None:
            raise InvalidInputError(f"{name}@{alias} has no earlier version to roll back to; `modelcycle models history {name}` shows its moves")
        target = stack[-2]
        return self.store.move_alias(name, alias, target, action="rollback", actor=current_actor(), at=time.time(),
                                     reason=reason or f"rollback from version {current}", expected_from=current)

    def promote(self, name: str, version: int, alias: str = "champion", verdict: Any = None, force: bool = False,
                reason: str | None = None) -> AliasEvent:
        """Move ``name@alias`` to ``version`` when ``verdict`` passed for that version; ``force=True`` overrides, on the record.

        Without ``verdict``, the latest verdict stored for the version (by ``validate_model``) decides.

        Raises:
            GateError: no verdict, a verdict for another version, or a failing verdict, without ``force``.
        """
        check_model_name(name)
        check_alias(alias)
        number = _version_number(version)
        self.store.get_model_version(name, number)  # a clear error before anything else
        verdict_id = None
        problem = None
        compared: tuple[str | None, int | None] = (None, None)  # the alias the verdict compared with, and its version then
        if verdict is None:
            stored = self.store.list_verdicts(name, number)
            if not stored:
                problem = "there is no verdict: validate the version first (mc.validate_model or `modelcycle models validate`)"
            else:  # the latest stored verdict of this version decides
                latest = stored[-1]
                verdict_id = latest.id
                compared = (latest.baseline_alias, latest.baseline_version)
                if not latest.passed:
                    problem = "its latest verdict failed: " + "; ".join(latest.failures())
        else:
            if (verdict.model_name, verdict.model_version) not in ((name, number), (None, None)):
                raise GateError(f"the verdict is for {verdict.model_name}/{verdict.model_version}, not {name}/{number}")
            verdict_id = self.record_verdict(verdict, name, number)
            compared = (getattr(verdict, "baseline_alias", None), getattr(verdict, "baseline_version", None))
            if not verdict.passed:
                problem = "its verdict failed: " + "; ".join(verdict.failures())
        expected: int | str | None = "any"
        if not problem and compared[0] == alias:  # the verdict holds only against what it was compared with
            expected = compared[1]
            current = self.store.get_alias(name, alias)
            if current != expected:
                was = f"version {expected}" if expected is not None else "no version"
                problem = (f"its verdict compared it with {alias} when that was {was}, and {alias} is version {current} now "
                           f"(promoted since); validate it again against the current {alias}")
                expected = "any"
        if problem and not force:
            raise GateError(f"{name}/{number} was not promoted to {alias}: {problem} (force=True or --force overrides, and is recorded)")
        text = (reason or "verdict passed") if not problem else f"{reason + '; ' if reason else ''}forced: {problem}"
        try:
            return self.store.move_alias(name, alias, number, action="promote", actor=current_actor(), at=time.time(),
                                         reason=text, verdict_id=verdict_id, forced=bool(problem), expected_from=expected)
        except InvalidInputError as e:  # another promotion won the race between the check above and the move
            raise GateError(f"{name}/{number} was not promoted to {alias}: {e} (promoted since); validate it again against "
                            f"the current {alias}") from None

    def record_verdict(self, verdict: Any, name: str, version: int) -> str:
        """Store a verdict (once) linked to ``name``/``version``; returns its id."""
        if getattr(verdict, "stored", False):
            return verdict.id
        self.store.get_model_version(name, version)
        self.store.save_verdict(verdict.id, name, version, bool(verdict.passed), verdict.created_at, verdict.run_id, verdict.to_dict())
        verdict.stored = True
        verdict.model_name, verdict.model_version = name, version
        return verdict.id

    def verdicts(self, name: str, version: int | None = None) -> list[StoredVerdict]:
        return self.store.list_verdicts(check_model_name(name), version)

    # --- loading --------------------------------------------------------------------------
    def resolve(self, uri: str, local: bool = True) -> tuple[ModelRef, ModelVersion | None]:
        """The parsed URI (see :func:`~modelcycle.registry.uri.parse_model_uri`) and, for a registered model, its version now."""
        ref = parse_model_uri(uri, local)
        if ref.kind != "models":
            return ref, None
        return ref, self.get_model_version(ref.name or "", self._version_spec(ref))

    def trust(self, trust: bool = False, trusted_types: Sequence[str] | None = None) -> Trust:
        """What a load may build: ``trusted_types`` and the settings' ``MODELCYCLE_TRUSTED_TYPES``; pickle only with ``trust=True``."""
        return Trust.of(trust, [*self.client.settings.trusted_types, *(trusted_types or ())])

    def load_model(self, uri: str | LoggedModel, trust: bool = False, trusted_types: Sequence[str] | None = None) -> LoadedModel:
        """Load ``runs:/<run_id>/model``, ``models:/name/3``, ``models:/name@champion`` or a local package folder.

        The package is verified file by file against its manifest, and the manifest against the
        hash recorded when the model was logged, before anything is deserialised; what the model
        file may build is decided by the loader (see :mod:`modelcycle.models.trust`). Loaded models
        are cached per package hash and trust; an alias is resolved again on every call, so a moved
        alias loads the new version.
        """
        allowed = self.trust(trust, trusted_types)
        text = uri.uri if isinstance(uri, LoggedModel) else uri
        ref, version = self.resolve(text)
        if ref.kind == "path":
            if not os.path.exists(ref.path or ""):
                raise NotFoundError(f"{text!r} is neither a model package folder nor a registered model; give {MODEL_FORMS}")
            return load_package(ref.path or "", trust=allowed)
        if version is not None:
            key = (version.hash, allowed)
            cached = self._cache.get(key)
            if cached is not None:
                return LoadedModel(cached.raw, cached.manifest, cached.path, version)
            run = self.client.get_run(version.run_id)
            path = version.artifact_path
            expected = version.hash
        else:
            run = self.client.get_run(ref.run_id or "")
            path = safe_artifact_path(ref.path or "")
            expected = None
        manifest, digests = self._run_package(run, path)
        if expected is not None and manifest.hash != expected:
            raise ModelIntegrityError(
                f"{MANIFEST} of {text} is not the one registered (sha256 {manifest.hash[:12]}…, registered {expected[:12]}…); "
                "refusing to load it")
        key = (manifest.hash, allowed)
        cached = self._cache.get(key)
        if cached is not None:
            return LoadedModel(cached.raw, cached.manifest, cached.path, version)
        folder = self._materialise(manifest.hash, digests)
        try:
            loaded = load_package(folder, trust=allowed, expected_hash=manifest.hash, version=version)
        except ModelIntegrityError:  # the local cache was changed: fetch the verified files again
            shutil.rmtree(folder, ignore_errors=True)
            folder = self._materialise(manifest.hash, digests)
            loaded = load_package(folder, trust=allowed, expected_hash=manifest.hash, version=version)
        with self._lock:
            self._cache[key] = loaded
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return loaded

    def verify_version(self, name: str, version: int, trust: bool = False, trusted_types: Sequence[str] | None = None) -> LoadedModel:
        """Load a registered version afresh from the artifact store (no cache of any kind), as a new server would.

        Raises:
            ModelIntegrityError: a file of the package changed in the store.
        """
        allowed = self.trust(trust, trusted_types)
        mv = self.get_model_version(name, version)
        manifest, digests = self._run_package(self.client.get_run(mv.run_id), mv.artifact_path)
        if manifest.hash != mv.hash:
            raise ModelIntegrityError(f"{MANIFEST} of {mv.uri} is not the one registered; refusing to load it")
        folder = Path(tempfile.mkdtemp(prefix="modelcycle-verify-"))
        try:
            for file, digest in digests.items():
                try:
                    self.client.artifact_store.download(digest, folder / safe_artifact_path(file))
                except ArtifactCorruptedError:
                    raise ModelIntegrityError(f"{file} of {mv.uri} was changed in the artifact store (its sha256 no longer "
                                              "matches); the version cannot be loaded") from None
            loaded = load_package(folder, trust=allowed, expected_hash=mv.hash, version=mv)
            return loaded
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def package_profiles(self, name: str, version: int) -> tuple[Any, Any]:
        """A registered version's training-data profile and the profile of its predictions on that data
        (None for what the package does not have), read from the artifact store without loading the model."""
        from modelcycle.data import Profile
        from modelcycle.models.package import PREDICTIONS, PROFILE

        mv = self.get_model_version(name, version)
        manifest, digests = self._run_package(self.client.get_run(mv.run_id), mv.artifact_path)
        if manifest.hash != mv.hash:
            raise ModelIntegrityError(f"{MANIFEST} of {mv.uri} is not the one registered; refusing to read its profiles")
        out = []
        for file in (PROFILE, PREDICTIONS):
            digest = digests.get(file) if file in manifest.files else None
            out.append(Profile.from_bytes(self.client.artifact_store.get_bytes(digest)) if digest else None)
        return out[0], out[1]

    def _run_package(self, run: Any, path: str) -> tuple[Manifest, dict[str, str]]:
        """The package's manifest (verified by the artifact store) and the digests of its files."""
        prefix = path + "/"
        digests = {a.path[len(prefix):]: a.digest for a in run.artifacts if a.path.startswith(prefix)}
        if MANIFEST not in digests:
            models = sorted({a.path.rsplit("/", 1)[0] for a in run.artifacts if a.path.endswith("/" + MANIFEST)})
            raise NotFoundError(f"run {run.id} has no model at {path!r}; its models: {', '.join(models) or 'none'}")
        manifest = Manifest.parse(self.client.artifact_store.get_bytes(digests[MANIFEST]))
        return manifest, digests

    def _materialise(self, package_hash: str, digests: dict[str, str]) -> Path:
        """The package's files in a local cache folder named by its hash (downloaded once, verified on every load)."""
        root = Path(self.client.settings.home) / "cache" / "models"
        folder = root / package_hash
        if folder.is_dir():
            return folder
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{package_hash[:12]}-", dir=root))
        try:
            for name, digest in digests.items():
                target = staging / safe_artifact_path(name)
                try:
                    self.client.artifact_store.download(digest, target)
                except ArtifactCorruptedError:
                    raise ModelIntegrityError(
                        f"{name} of the model package was changed after the model was saved (its stored bytes no longer "
                        "match their sha256); refusing to load it") from None
            try:
                os.replace(staging, folder)
            except OSError:  # another process got there first
                if not folder.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder


def _version_number(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, (int, str)) or not str(version).isdigit() or int(version) < 1:
        raise InvalidInputError(f"{version!r} is not a version number; versions are 1, 2, 3, …")
    return int(version)
