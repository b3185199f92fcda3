"""The operations' part of the SQL metadata store: monitoring windows, alerts, continuous-training cycles.

A cycle's trigger key is unique per project, so two agents that see the same trigger insert one
cycle between them; a cycle is worked on by whoever holds its lease, and a cycle whose lease ran
out (its agent died) can be claimed by the next agent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from modelcycle.entities import Alert, Cycle, CycleState
from modelcycle.errors import InvalidInputError
from modelcycle.store.metadata import schema as s
from modelcycle.store.metadata.base import NewAlert, StoredWindow


def _moment(value: float, what: str) -> None:
    """A time in seconds since 1970 that every reader can hold (years 1970 to 2262)."""
    if not 0 <= value < 9.2e9:
        raise InvalidInputError(f"{what} is a time in seconds since 1970 (UTC), not {value!r}")

def _cycle_times(values: Mapping[str, Any]) -> None:
    for key in ("started_at", "updated_at", "lease_until", "finished_at"):
        value = values.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise InvalidInputError(f"a cycle's {key} is a time in seconds, not {value!r}")
            _moment(value, f"a cycle's {key}")


__all__ = ["OperationsTables"]

CYCLE_FIELDS = ("state", "owner", "lease_until", "updated_at", "finished_at", "alert_id", "run_id", "model", "version",
                "verdict_id", "alias_event_id")


class OperationsTables:
    """Mixed into SqlMetadataStore; uses its ``_read``, ``_write`` and ``_insert``."""

    _read: Any
    _write: Any
    _insert: Any

    # --- monitoring windows -------------------------------------------------------------------
    def window_get(self, model: str, role: str, seconds: int, starts: list[float]) -> dict[float, StoredWindow]:
        """Stored windows of ``model`` among ``starts`` (summary parsed, profile bytes as stored)."""
        w = s.monitor_windows
        found: dict[float, StoredWindow] = {}
        for i in range(0, len(starts), 500):
            chunk = starts[i:i + 500]
            stmt = select(w).where(and_(w.c.model == model, w.c.role == role, w.c.seconds == seconds, w.c.start.in_(chunk)))
            for row in self._read(lambda conn, st=stmt: conn.execute(st).all()):
                found[row.start] = {"start": row.start, "rows": row.rows, "sources": row.sources, "profile": row.profile,
                                    "summary": json.loads(row.summary), "computed_at": row.computed_at}
        return found

    def window_list(self, model: str, role: str = "champion", start: float | None = None, end: float | None = None,
                    limit: int = 2000) -> list[dict[str, Any]]:
        """The stored windows of ``model`` that start in ``[start, end)``, the newest ``limit`` of them, oldest first:
        start, seconds, rows, summary and when it was computed (not the profile: what a chart of them over time needs)."""
        if not 1 <= limit <= 10_000:
            raise InvalidInputError(f"limit must be between 1 and 10,000, got {limit}")
        w = s.monitor_windows
        stmt = select(w.c.start, w.c.seconds, w.c.rows, w.c.summary, w.c.computed_at).where(w.c.model == model, w.c.role == role)
        if start is not None:
            stmt = stmt.where(w.c.start >= start)
        if end is not None:
            stmt = stmt.where(w.c.start < end)
        rows = self._read(lambda conn: conn.execute(stmt.order_by(w.c.start.desc(), w.c.seconds).limit(limit)).all())
        return [{"start": r.start, "seconds": r.seconds, "rows": r.rows, "summary": json.loads(r.summary),
                 "computed_at": r.computed_at} for r in reversed(rows)]

    def window_put(self, model: str, role: str, seconds: int, rows: list[StoredWindow]) -> None:
        """Store summarised windows; a stored window is replaced only by one of at least as many rows.

        The log only grows (merging files keeps their rows), so a summary of fewer rows is a partial view: a
        host that has not yet seen a replica's files never overwrites a fuller summary another host stored.
        """
        if not rows:
            return
        if not (isinstance(seconds, int) and 0 < seconds <= 366 * 86400):
            raise InvalidInputError(f"a window lasts 1 second to a year, not {seconds!r} seconds")
        for r in rows:
            _moment(r["start"], "a window's start")
            _moment(r["computed_at"], "the time a window was computed")
            if r["rows"] < 0:
                raise InvalidInputError(f"a window holds 0 or more rows, not {r['rows']}")
        w = s.monitor_windows
        values = [{"model": model, "role": role, "seconds": seconds, "start": r["start"], "rows": r["rows"], "sources": r["sources"],
                   "profile": r.get("profile"), "summary": json.dumps(r["summary"], default=str), "computed_at": r["computed_at"]}
                  for r in rows]

        def tx(conn: Connection) -> None:
            for v in values:
                stmt = self._insert(w).values(**v)
                conn.execute(stmt.on_conflict_do_update(index_elements=["model", "role", "seconds", "start"], set_={
                    k: stmt.excluded[k] for k in ("rows", "sources", "profile", "summary", "computed_at")},
                    where=w.c.rows <= stmt.excluded.rows))

        self._write(tx)

    # --- alerts --------------------------------------------------------------------------------
    def alert_firing(self, model: str) -> dict[str, Alert]:
        """The firing alert of each rule of ``model``."""
        a = s.alerts
        rows = self._read(lambda conn: conn.execute(select(a).where(and_(a.c.model == model, a.c.state == "firing"))).all())
        return {r.rule: _alert(r) for r in rows}

    def alert_raise(self, alert: NewAlert) -> bool:
        """Insert a firing alert unless the rule already has one (then False: it is not repeated)."""
        _moment(alert["raised_at"], "the time an alert was raised")
        if alert.get("window_start") is not None:
            _moment(alert["window_start"], "an alert's window start")
        a = s.alerts

        def tx(conn: Connection) -> bool:
            held = conn.execute(select(a.c.id).where(and_(a.c.model == alert["model"], a.c.rule == alert["rule"],
                                                          a.c.state == "firing"))).first()
            if held is not None:
                return False
            conn.execute(a.insert().values(id=alert["id"], model=alert["model"], rule=alert["rule"], state="firing",
                                           window_start=alert.get("window_start"), raised_at=alert["raised_at"], resolved_at=None,
                                           message=alert["message"], details=json.dumps(alert.get("details", {}), default=str)))
            return True

        return self._write(tx)

    def alert_resolve(self, model: str, rule: str, at: float) -> str | None:
        """Resolve the rule's firing alert; its id, or None when none was firing."""
        a = s.alerts

        def tx(conn: Connection) -> str | None:
            row = conn.execute(select(a.c.id).where(and_(a.c.model == model, a.c.rule == rule, a.c.state == "firing"))).first()
            if row is None:
                return None
            conn.execute(update(a).where(a.c.id == row.id).values(state="resolved", resolved_at=at))
            return row.id

        return self._write(tx)

    def alert_delivery(self, alert_id: str, record: Mapping[str, Any]) -> bool:
        """Store how the alert's latest event reached the webhook: ``event`` (firing or resolved), ``state``
        (pending, delivered, failed), ``attempts``, ``error`` and ``at``.

        The resolution is the later event: a record of the firing never replaces one of the resolution (a
        firing still being retried when the resolution was queued). False then, or when there is no such alert.
        """
        a = s.alerts
        value = json.dumps(dict(record), default=str)

        def tx(conn: Connection) -> bool:
            row = conn.execute(select(a.c.delivery).where(a.c.id == alert_id).with_for_update()).first()
            if row is None:
                return False
            if record.get("event") != "resolved" and row.delivery and json.loads(row.delivery).get("event") == "resolved":
                return False
            conn.execute(update(a).where(a.c.id == alert_id).values(delivery=value))
            return True

        return self._write(tx)

    def alert_list(self, model: str | None = None, limit: int = 100) -> list[Alert]:
        a = s.alerts
        stmt = select(a).order_by(a.c.raised_at.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(a.c.model == model)
        return [_alert(r) for r in self._read(lambda conn: conn.execute(stmt).all())]

    def alert_get(self, alert_id: str) -> Alert | None:
        a = s.alerts
        row = self._read(lambda conn: conn.execute(select(a).where(a.c.id == alert_id)).first())
        return _alert(row) if row is not None else None

    # --- cycles --------------------------------------------------------------------------------
    def cycle_claim_new(self, cycle: Cycle) -> bool:
        """Insert a new cycle for its trigger key; False when that trigger already has a cycle."""
        c = s.cycles
        _cycle_times({k: getattr(cycle, k) for k in ("started_at", "updated_at", "lease_until", "finished_at")})
        values = {**cycle.to_dict(), "detail": json.dumps(dict(cycle.detail), default=str)}
        stmt = (self._insert(c).values(**values).on_conflict_do_nothing(index_elements=["project", "trigger_key"])
                .returning(c.c.id))  # a row back when inserted (an INSERT's row count is not reported by every driver)
        return self._write(lambda conn: conn.execute(stmt).first() is not None)

    def cycle_claim_stale(self, project: str, owner: str, now: float, lease_until: float) -> Cycle | None:
        """Take over the oldest unfinished cycle whose lease ran out (its agent died); None when there is none."""
        c = s.cycles

        def tx(conn: Connection) -> Cycle | None:
            row = conn.execute(select(c).where(and_(c.c.project == project, c.c.finished_at.is_(None),
                                                    or_(c.c.lease_until.is_(None), c.c.lease_until < now)))
                               .order_by(c.c.started_at).limit(1).with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            claimed = conn.execute(update(c).where(and_(c.c.id == row.id, or_(c.c.lease_until.is_(None), c.c.lease_until < now)))
                                   .values(owner=owner, lease_until=lease_until, updated_at=now))
            return replace(_cycle(row), owner=owner, lease_until=lease_until) if claimed.rowcount else None

        return self._write(tx)

    def cycle_update(self, cycle_id: str, owner: str | None = None, detail: Mapping[str, Any] | None = None,
                     **fields: Any) -> bool:
        """Change a cycle's fields (only while ``owner`` holds it, when given); False when the lease was lost."""
        c = s.cycles
        unknown = set(fields) - set(CYCLE_FIELDS)
        if unknown:
            raise InvalidInputError(f"unknown cycle fields: {sorted(unknown)}; a cycle has {', '.join(CYCLE_FIELDS)}")
        _cycle_times(fields)

        def tx(conn: Connection) -> bool:
            cond = c.c.id == cycle_id
            if owner is not None:
                cond = and_(cond, c.c.owner == owner)
            values = dict(fields)
            if detail is not None:
                row = conn.execute(select(c.c.detail).where(cond)).first()
                if row is None:
                    return False
                values["detail"] = json.dumps({**json.loads(row.detail), **detail}, default=str)
            if not values:  # nothing to change: whether the cycle is there (and held by ``owner``)
                return conn.execute(select(c.c.id).where(cond)).first() is not None
            return bool(conn.execute(update(c).where(cond).values(**values)).rowcount)

        return self._write(tx)

    def cycle_get(self, cycle_id: str) -> Cycle | None:
        c = s.cycles
        row = self._read(lambda conn: conn.execute(select(c).where(c.c.id == cycle_id)).first())
        return _cycle(row) if row is not None else None

    def cycle_list(self, project: str | None = None, limit: int = 50, **equal: Any) -> list[Cycle]:
        c = s.cycles
        stmt = select(c).order_by(c.c.started_at.desc()).limit(limit)
        if project is not None:
            stmt = stmt.where(c.c.project == project)
        for key, value in equal.items():
            if key not in CYCLE_FIELDS and key not in ("trigger", "trigger_key"):
                raise InvalidInputError(f"cycles cannot be listed by {key!r}; by one of {', '.join(CYCLE_FIELDS)}")
            stmt = stmt.where(c.c[key] == value)
        return [_cycle(r) for r in self._read(lambda conn: conn.execute(stmt).all())]


def _alert(row: Any) -> Alert:
    return Alert(id=row.id, model=row.model, rule=row.rule, state=row.state, window_start=row.window_start,
                 raised_at=row.raised_at, resolved_at=row.resolved_at, message=row.message, details=json.loads(row.details),
                 delivery=json.loads(row.delivery) if row.delivery else None)


def _cycle(row: Any) -> Cycle:
    values = {k: getattr(row, k) for k in ("id", "project", "trigger", "trigger_key", "started_at", *CYCLE_FIELDS)}
    values["state"] = CycleState(values["state"])
    return Cycle(**values, detail=json.loads(row.detail))
