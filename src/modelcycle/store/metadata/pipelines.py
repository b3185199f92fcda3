"""The pipelines' part of the SQL metadata store: the step cache."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from modelcycle.store.metadata import schema as s

__all__ = ["PipelineTables"]


class PipelineTables:
    """Mixed into SqlMetadataStore; uses its ``_read``, ``_write`` and ``_insert``."""

    _read: Any
    _write: Any
    _insert: Any

    def cache_put(self, key: str, pipeline: str, step: str, run_id: str, output: dict[str, Any], fingerprint: str,
                  created_at: float) -> None:
        """Record a successful execution (the first one wins when two runs finish the same step at once)."""
        stmt = self._insert(s.step_cache).values(key=key, pipeline=pipeline, step=step, run_id=run_id,
                                                 output=json.dumps(output), fingerprint=fingerprint, created_at=created_at)
        self._write(lambda conn: conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"])))

    def cache_lookup(self, key: str, pipeline: str, step: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """In one query: the execution with this key (a hit), else the step's newest one (to say what changed)."""
        from sqlalchemy import case, or_

        c = s.step_cache
        hit = case((c.c.key == key, 1), else_=0)
        stmt = (select(c).where(or_(c.c.key == key, (c.c.pipeline == pipeline) & (c.c.step == step)))
                .order_by(hit.desc(), c.c.created_at.desc()).limit(1))
        row = self._read(lambda conn: conn.execute(stmt).first())
        if row is None:
            return None, None
        found = _row(row)
        return (found, None) if found["key"] == key else (None, found)


def _row(row: Any) -> dict[str, Any]:
    return {"key": row.key, "pipeline": row.pipeline, "step": row.step, "run_id": row.run_id,
            "output": json.loads(row.output), "fingerprint": row.fingerprint, "created_at": row.created_at}
