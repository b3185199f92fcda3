"""``lineage``: from any link of a continuous-training cycle to the whole chain, both ways.

alert or trigger → pipeline run → candidate version → verdict → alias move → served version.
Give a cycle id, an alert id, a run id (the pipeline's or the candidate's), a verdict id, an alias
event id or ``name/version``; a unique prefix of an id is enough.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from modelcycle.entities import Cycle
from modelcycle.errors import NotFoundError

__all__ = ["lineage"]


def _when(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else None


def _find_cycle(store: Any, registry: Any, ref: str) -> Cycle | None:
    ref = ref.strip()
    m = re.fullmatch(r"(?:models:/)?([A-Za-z0-9][A-Za-z0-9_.-]*)/(\d+)", ref)
    if m:
        found = store.cycle_list(None, 1, model=m.group(1), version=int(m.group(2)))
        return found[0] if found else None
    if ref.isdigit() and len(ref) < 12:  # an alias event number (or an id prefix made of digits only: looked up below)
        found = store.cycle_list(None, 1, alias_event_id=int(ref))
        if found:
            return found[0]
    for cycle in store.cycle_list(None, 10_000):
        for key in ("id", "alert_id", "run_id", "verdict_id"):
            value = getattr(cycle, key)
            if value and len(ref) >= 6 and value.startswith(ref):
                return cycle
    return None


def _first_served(home: Any, model: str, version: int, after: float) -> float | None:
    """When the prediction log first shows ``version`` answering (None when it never has)."""
    import pyarrow.compute as pc

    from modelcycle.store.predictions import list_files, log_root, read_parquet

    where = log_root(home)
    files = list_files(where, "predictions", model, start=after)
    for i in range(0, len(files), 200):
        table = read_parquet(where, [f.path for f in files[i:i + 200]], ["time", "version", "role"])
        hit = table.filter(pc.and_(pc.equal(table["version"], version), pc.equal(table["role"], "champion")))
        if hit.num_rows:
            return pc.min(hit["time"]).as_py().timestamp()
    return None


def lineage(ref: str, client: Any = None) -> dict[str, Any]:
    """The chain a continuous-training cycle left, found from any of its links.

    Raises:
        NotFoundError: nothing recorded matches ``ref``.
    """
    from modelcycle.registry.fluent import get_registry
    from modelcycle.tracking.fluent import get_client

    client = client or get_client()
    registry = get_registry(client)
    store = client.store
    cycle = _find_cycle(store, registry, ref)
    if cycle is None:
        raise NotFoundError(f"no continuous-training cycle of the agent led to or from {ref!r} (a version registered or "
                            "promoted by hand has no lineage); give the id of a cycle, an alert, a run or a verdict, an alias "
                            "event number, or a name/version the agent made (see `modelcycle agent --status`)")
    chain: list[dict[str, Any]] = []
    trigger = {"step": "trigger", "kind": cycle.trigger, "key": cycle.trigger_key, "at": _when(cycle.started_at),
               **cycle.detail.get("trigger", {})}
    if cycle.alert_id:
        alert = store.alert_get(cycle.alert_id)
        if alert is not None:
            trigger |= {"alert_id": alert.id, "message": alert.message, "alert_state": alert.state,
                        "raised": _when(alert.raised_at)}
    chain.append(trigger)
    if cycle.run_id:
        run = client.get_run(cycle.run_id)
        chain.append({"step": "pipeline run", "run_id": run.id, "name": run.name, "status": str(run.status.value),
                      "started": _when(run.start_time)})
    if cycle.version is not None:
        mv = registry.get_model_version(cycle.model, cycle.version)
        chain.append({"step": "candidate", "model": mv.name, "version": mv.version, "run_id": mv.run_id, "hash": mv.hash[:12],
                      "registered": _when(mv.created_at)})
    if cycle.verdict_id:
        verdict = next((v for v in registry.verdicts(cycle.model, cycle.version) if v.id == cycle.verdict_id), None)
        chain.append({"step": "verdict", "verdict_id": cycle.verdict_id, "passed": verdict.passed if verdict else None,
                      "failures": verdict.failures() if verdict else [],
                      "compared_with": (f"{verdict.baseline_alias} version {verdict.baseline_version}"
                                        if verdict and verdict.baseline_alias and verdict.baseline_version else None)})
    if cycle.alias_event_id is not None:
        event = next((e for e in registry.history(cycle.model) if e.id == cycle.alias_event_id), None)
        if event is not None:
            chain.append({"step": "alias move", "alias_event_id": event.id, "alias": event.alias, "from_version": event.from_version,
                          "to_version": event.to_version, "at": _when(event.at), "by": event.actor})
            later = [e for e in registry.history(cycle.model, event.alias) if e.id > event.id]
            if later:
                chain.append({"step": "later moves", "events": [{"alias_event_id": e.id, "action": e.action, "to_version": e.to_version,
                                                                  "reason": e.reason} for e in later[:5]]})
    served_at = None
    if cycle.version is not None and cycle.state in ("done", "verifying"):
        from modelcycle.store.predictions import settings_root

        served_at = _first_served(settings_root(client.settings), cycle.model, cycle.version, cycle.started_at)
        chain.append({"step": "served", "version": cycle.version, "first_answer": _when(served_at),
                      "note": None if served_at else "no logged prediction from this version yet"})
    return {"cycle_id": cycle.id, "project": cycle.project, "state": str(cycle.state), "started": _when(cycle.started_at),
            "finished": _when(cycle.finished_at), "error": cycle.detail.get("error"),
            "failures": cycle.detail.get("failures"), "chain": chain}
