"""The registry's part of the SQL metadata store: versions, tags, aliases, the audit log, verdicts.

Every change of a model's versions or aliases locks the model's row first (``SELECT … FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers), so version
numbers never collide and an alias move and its audit event are written together or not at all.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, delete, func, select, true
from sqlalchemy.engine import Connection

from modelcycle.entities import AliasEvent, ModelVersion, StoredVerdict
from modelcycle.errors import InvalidInputError, NotFoundError
from modelcycle.store.metadata import query as q
from modelcycle.store.metadata import schema as s

__all__ = ["VERSION_ATTRIBUTES", "RegistryTables"]

# fields of search_model_versions filters
VERSION_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "name": ("name", "str"),
    "version": ("version", "num"),
    "run_id": ("run_id", "str"),
    "source": ("source", "str"),
    "hash": ("hash", "str"),
    "flavour": ("flavour", "str"),
    "created": ("created_at", "time"),
    "created_at": ("created_at", "time"),
    "created_by": ("created_by", "str"),
    "description": ("description", "str"),
}
_VERSION_PREFIXES = {"tags": "tag", "tag": "tag"}


class RegistryTables:
    """Mixed into SqlMetadataStore; uses its ``_read``, ``_write`` and ``_insert``."""

    _read: Any
    _write: Any
    _insert: Any

    # --- versions -------------------------------------------------------------------------
    def _lock_model(self, conn: Connection, name: str, now: float, description: str | None = None) -> None:
        conn.execute(self._insert(s.registered_models).values(name=name, created_at=now, description=description)
                     .on_conflict_do_nothing(index_elements=["name"]))
        conn.execute(select(s.registered_models.c.name).where(s.registered_models.c.name == name).with_for_update())

    def create_model_version(self, name: str, *, run_id: str, source: str, artifact_path: str, hash: str, flavour: str,
                             created_at: float, created_by: str | None, description: str | None,
                             tags: Mapping[str, str]) -> ModelVersion:
        def tx(conn: Connection) -> int:
            self._lock_model(conn, name, created_at)
            mv = s.model_versions
            version = (conn.execute(select(func.max(mv.c.version)).where(mv.c.name == name)).scalar() or 0) + 1
            conn.execute(mv.insert().values(
                name=name, version=version, run_id=run_id, source=source, artifact_path=artifact_path, hash=hash,
                flavour=flavour, created_at=created_at, created_by=created_by, description=description))
            if tags:
                conn.execute(s.model_version_tags.insert(),
                             [{"name": name, "version": version, "key": k, "value": v} for k, v in tags.items()])
            return version

        return self.get_model_version(name, self._write(tx))

    def set_model_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        self.get_model_version(name, version)

        def tx(conn: Connection) -> None:
            t = s.model_version_tags
            for k, v in tags.items():
                conn.execute(self._insert(t).values(name=name, version=version, key=k, value=v)
                             .on_conflict_do_update(index_elements=["name", "version", "key"], set_={"value": v}))

        self._write(tx)

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        found = self._versions(and_(s.model_versions.c.name == name, s.model_versions.c.version == version), None)
        if not found:
            known = self._read(lambda c: c.execute(select(s.registered_models.c.name).where(s.registered_models.c.name == name)).first())
            if known is None:
                raise NotFoundError(f"no registered model named {name!r}; `modelcycle models ls` lists them")
            raise NotFoundError(f"model {name!r} has no version {version}; `modelcycle models show {name}` lists its versions")
        return found[0]

    def search_model_versions(self, filter: str | None = None, limit: int | None = None) -> list[ModelVersion]:
        node = q.parse_filter(filter, VERSION_ATTRIBUTES, _VERSION_PREFIXES)
        return self._versions(self._compile_version(node) if node is not None else true(), limit)

    def _compile_version(self, node: Any) -> Any:
        from modelcycle.store.metadata.sql import compile_filter

        return compile_filter(node, _version_comparison)

    def _versions(self, condition: Any, limit: int | None) -> list[ModelVersion]:
        mv, t, a = s.model_versions, s.model_version_tags, s.model_aliases
        stmt = select(mv).where(condition).order_by(mv.c.name, mv.c.version.desc())
        if limit is not None:
            stmt = stmt.limit(limit)

        def read(conn: Connection) -> list[ModelVersion]:
            rows = conn.execute(stmt).all()
            if not rows:
                return []
            names = sorted({r.name for r in rows})
            tags: dict[tuple[str, int], dict[str, str]] = {}
            for r in conn.execute(select(t).where(t.c.name.in_(names))).all():
                tags.setdefault((r.name, r.version), {})[r.key] = r.value
            aliases: dict[tuple[str, int], list[str]] = {}
            for r in conn.execute(select(a).where(a.c.name.in_(names)).order_by(a.c.alias)).all():
                aliases.setdefault((r.name, r.version), []).append(r.alias)
            return [ModelVersion(
                name=r.name, version=r.version, run_id=r.run_id, source=r.source, artifact_path=r.artifact_path,
                hash=r.hash, flavour=r.flavour, created_at=r.created_at, created_by=r.created_by,
                description=r.description, tags=tags.get((r.name, r.version), {}),
                aliases=tuple(aliases.get((r.name, r.version), ())),
            ) for r in rows]

        return self._read(read)

    def list_registered_models(self) -> list[dict[str, Any]]:
        rm, mv, a = s.registered_models, s.model_versions, s.model_aliases
        stmt = (select(rm.c.name, rm.c.created_at, rm.c.description, func.count(mv.c.version).label("versions"),
                       func.max(mv.c.version).label("latest"), func.max(mv.c.created_at).label("updated_at"))
                .select_from(rm.outerjoin(mv, mv.c.name == rm.c.name))
                .group_by(rm.c.name, rm.c.created_at, rm.c.description).order_by(rm.c.name))

        def read(conn: Connection) -> list[dict[str, Any]]:
            out = [dict(r._mapping) for r in conn.execute(stmt).all()]
            aliases: dict[str, dict[str, int]] = {}
            for r in conn.execute(select(a).order_by(a.c.alias)).all():
                aliases.setdefault(r.name, {})[r.alias] = r.version
            for row in out:
                row["aliases"] = aliases.get(row["name"], {})
            return out

        return self._read(read)

    # --- aliases --------------------------------------------------------------------------
    def get_alias(self, name: str, alias: str) -> int | None:
        a = s.model_aliases
        return self._read(lambda c: c.execute(select(a.c.version).where(a.c.name == name, a.c.alias == alias)).scalar())

    def get_aliases(self, name: str) -> dict[str, int]:
        a = s.model_aliases
        rows = self._read(lambda c: c.execute(select(a.c.alias, a.c.version).where(a.c.name == name).order_by(a.c.alias)).all())
        return {r.alias: r.version for r in rows}

    def move_alias(self, name: str, alias: str, to_version: int | None, *, action: str, actor: str, at: float,
                   reason: str | None = None, verdict_id: str | None = None, forced: bool = False,
                   expected_from: int | str | None = "any") -> AliasEvent:
        """Point ``alias`` at ``to_version`` (None deletes it) and append the event, in one transaction.

        ``expected_from`` (when not "any") makes the move conditional on the alias' current
        version, so two promoters racing cannot both win.
        """
        a, e, mv = s.model_aliases, s.alias_events, s.model_versions

        def tx(conn: Connection) -> AliasEvent:
            self._lock_model(conn, name, at)
            if to_version is not None:
                exists = conn.execute(select(mv.c.version).where(mv.c.name == name, mv.c.version == to_version)).first()
                if exists is None:
                    raise NotFoundError(f"model {name!r} has no version {to_version}; nothing was changed")
            current = conn.execute(select(a.c.version).where(a.c.name == name, a.c.alias == alias)).scalar()
            if expected_from != "any" and current != expected_from:
                raise InvalidInputError(
                    f"{name}@{alias} moved to version {current} while this change was being decided; nothing was changed")
            if to_version is None:
                if current is None:
                    raise NotFoundError(f"model {name!r} has no alias {alias!r}; nothing was changed")
                conn.execute(delete(a).where(a.c.name == name, a.c.alias == alias))
            elif current is None:
                conn.execute(a.insert().values(name=name, alias=alias, version=to_version, updated_at=at))
            else:
                conn.execute(a.update().where(a.c.name == name, a.c.alias == alias).values(version=to_version, updated_at=at))
            event_id = conn.execute(e.insert().values(
                name=name, alias=alias, from_version=current, to_version=to_version, action=action, actor=actor, at=at,
                reason=reason, verdict_id=verdict_id, forced=forced).returning(e.c.id)).scalar_one()
            return AliasEvent(event_id, name, alias, current, to_version, action, actor, at, reason, verdict_id, forced)

        return self._write(tx)

    def alias_events(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        e = s.alias_events
        cond = e.c.name == name if alias is None else and_(e.c.name == name, e.c.alias == alias)
        rows = self._read(lambda c: c.execute(select(e).where(cond).order_by(e.c.id)).all())
        return [AliasEvent(r.id, r.name, r.alias, r.from_version, r.to_version, r.action, r.actor, r.at, r.reason,
                           r.verdict_id, bool(r.forced)) for r in rows]

    # --- verdicts -------------------------------------------------------------------------
    def save_verdict(self, id: str, name: str, version: int, passed: bool, created_at: float, run_id: str | None,
                     data: Mapping[str, Any]) -> None:
        data = _check_verdict(data)
        if not (isinstance(created_at, (int, float)) and math.isfinite(created_at) and 0 <= created_at < 1e11):
            raise InvalidInputError(f"a verdict's created_at must be a time in seconds, not {created_at!r}")
        text = json.dumps(data, default=str, allow_nan=True)
        self._write(lambda c: c.execute(s.verdicts.insert().values(
            id=id, name=name, version=version, passed=passed, created_at=created_at, run_id=run_id, data=text)))

    def list_verdicts(self, name: str, version: int | None = None) -> list[StoredVerdict]:
        v = s.verdicts
        cond = v.c.name == name if version is None else and_(v.c.name == name, v.c.version == version)
        rows = self._read(lambda c: c.execute(select(v).where(cond).order_by(v.c.created_at)).all())
        return [_verdict_row(r) for r in rows]


def _version_comparison(node: q.Comparison) -> Any:
    from sqlalchemy import exists, not_

    from modelcycle.store.metadata.sql import _value_condition

    mv = s.model_versions
    if node.field.kind == "attribute":
        return _value_condition(mv.c[node.field.key], node)
    t = s.model_version_tags
    present = exists().where(t.c.name == mv.c.name, t.c.version == mv.c.version, t.c.key == node.field.key)
    if node.op == "is null":
        return not_(present)
    if node.op == "is not null":
        return present
    return present.where(_value_condition(t.c.value, node))


def _check_verdict(data: Any) -> dict[str, Any]:
    """A verdict's record as ``Verdict.to_dict`` writes it: a mapping whose rules are mappings, a whole number of rows,
    a policy mapping, a baseline version that is a whole number or None."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"a verdict's data must be a mapping, not {type(data).__name__}")
    rules = data.get("rules", [])
    if not isinstance(rules, (list, tuple)) or not all(isinstance(r, Mapping) for r in rules):
        raise InvalidInputError("a verdict's rules must be a list of mappings (rule, passed, expected, candidate, baseline, detail)")
    out = dict(data)
    for key in ("rows", "baseline_version"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise InvalidInputError(f"a verdict's {key} must be a whole number, not {value!r}")
        if value is not None:
            out[key] = int(value)
    if not isinstance(data.get("policy", {}), Mapping):
        raise InvalidInputError("a verdict's policy must be a mapping")
    for key in ("baseline", "baseline_alias"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InvalidInputError(f"a verdict's {key} must be text")
    return out


def _verdict_row(row: Any) -> StoredVerdict:
    """A stored verdict; a record that does not have a verdict's shape (written past the checks, by hand) is read as
    the parts of it that do, so one bad row never stops the model's other verdicts from being read."""
    try:
        data = json.loads(row.data)
    except ValueError:
        data = {}
    if not isinstance(data, Mapping):
        data = {}
    rules = data.get("rules")
    rows = data.get("rows")
    version = data.get("baseline_version")
    text = lambda v: v if isinstance(v, str) else None  # noqa: E731
    return StoredVerdict(id=row.id, name=row.name, version=row.version, passed=bool(row.passed), created_at=row.created_at,
                         run_id=row.run_id, rules=tuple(r for r in rules if isinstance(r, Mapping)) if isinstance(rules, list) else (),
                         policy=data["policy"] if isinstance(data.get("policy"), Mapping) else {},
                         baseline=text(data.get("baseline")), baseline_alias=text(data.get("baseline_alias")),
                         baseline_version=version if isinstance(version, int) and not isinstance(version, bool) else None,
                         rows=rows if isinstance(rows, int) and not isinstance(rows, bool) else 0)
