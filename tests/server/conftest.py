"""The team server's users and records, shared by the access tests and the attack cases."""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelcycle.entities import Cycle, CycleState
from modelcycle.settings import Settings
from modelcycle.store.metadata.base import NewRun, WriteBatch
from tests.conftest import running

# who: (token name, level on experiment "churn" and model "churn": 0 none, 1 read, 2 write, 3 manage; writes elsewhere)
USERS = {
    "reader": ({"experiment:churn": "read", "model:churn": "read"}, False),
    "writer": ({"experiment:churn": "write", "model:churn": "write"}, False),
    "manager": ({"experiment:churn": "manage", "model:churn": "manage"}, False),
    "admin": ({}, True),
    "outsider": ({"experiment:fraud": "write", "model:fraud": "write"}, False),  # another experiment's writer
    "revoked": ({"experiment:churn": "manage", "model:churn": "manage"}, False),
}

class World:
    """The server's records the calls are made about: experiment, run, model, alert, cycle and cache entry of churn,
    and the same of fraud (which only the outsider and the admin may see)."""

    def __init__(self, store: Any, digest: str) -> None:
        now = time.time()
        self.churn = store.get_or_create_experiment("churn").id
        self.fraud = store.get_or_create_experiment("fraud").id
        self.run = uuid.uuid4().hex
        self.fraud_run = uuid.uuid4().hex
        store.write(WriteBatch(runs=[NewRun(id=self.run, experiment_id=self.churn, name="r", start_time=now),
                                     NewRun(id=self.fraud_run, experiment_id=self.fraud, name="f", start_time=now)],
                               metrics=[(self.run, "m", 1.0, 0, now), (self.fraud_run, "m", 2.0, 0, now)]))
        for model, run in (("churn", self.run), ("fraud", self.fraud_run)):
            store.create_model_version(model, run_id=run, source="s", artifact_path="model", hash="h" * 64, flavour="sklearn",
                                       created_at=now, created_by="setup", description=None, tags={})
            store.alert_raise({"id": f"alert-{model}", "model": model, "rule": "drift", "raised_at": now, "message": "m"})
            store.cycle_claim_new(Cycle(id=f"cycle-{model}", project=model, trigger="manual", trigger_key=f"k-{model}",
                                        state=CycleState.TRAINING, started_at=now, updated_at=now))
            store.cache_put(f"key-{model}", "pipe", model, run, {}, "fp", now)
        self.digest = digest

    def args(self, call: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        now, run, u = time.time(), self.run, uuid.uuid4().hex
        return {
            "get_or_create_experiment": (("churn",), {}),
            "get_experiment": (("churn",), {}),
            "list_experiments": ((), {}),
            "create_run": ((NewRun(id=u, experiment_id=self.churn, name="n", start_time=now),), {}),
            "write": ((WriteBatch(metrics=[(run, "m", 3.0, 1, now)]),), {}),
            "heartbeat": (([run], now), {}),
            "mark_lost": ((0.0,), {}),
            "get_run": ((run,), {}),
            "resolve_run_id": ((run[:10],), {}),
            "search_runs": ((["churn"],), {}),
            "search_page": ((["churn"],), {}),
            "count_runs": ((["churn"],), {}),
            "run_keys": ((["churn"],), {}),
            "get_metric_history": ((run, "m"), {}),
            "metric_histories": (([run], "m"), {}),
            "metric_keys": ((run,), {}),
            "artifact_clash": ((run, ["a.txt"]), {}),
            "get_environment": (("e" * 64,), {}),
            "delete_run": ((run,), {"dry_run": True}),
            "referenced_digests": ((), {}),
            "create_model_version": (("churn",), dict(run_id=run, source="s", artifact_path="model", hash="h" * 64,
                                                      flavour="sklearn", created_at=now, created_by="spoofed",
                                                      description=None, tags={})),
            "set_model_version_tags": (("churn", 1, {"k": "v"}), {}),
            "get_model_version": (("churn", 1), {}),
            "search_model_versions": ((), {}),
            "list_registered_models": ((), {}),
            "get_alias": (("churn", "champion"), {}),
            "get_aliases": (("churn",), {}),
            "move_alias": (("churn", "champion", 1), dict(action="promote", actor="spoofed", at=now)),
            "alias_events": (("churn",), {}),
            "save_verdict": ((u, "churn", 1, True, now, None, {}), {}),
            "list_verdicts": (("churn",), {}),
            "window_get": (("churn", "live", 60, [0.0]), {}),
            "window_list": (("churn",), {}),
            "window_put": (("churn", "live", 60, []), {}),
            "alert_firing": (("churn",), {}),
            "alert_raise": (({"id": u, "model": "churn", "rule": "r" + u, "raised_at": now, "message": "m"},), {}),
            "alert_resolve": (("churn", "nothing-firing", now), {}),
            "alert_delivery": (("alert-churn", {"event": "firing"}), {}),
            "alert_list": ((), {}),
            "alert_get": (("alert-churn",), {}),
            "cycle_claim_new": ((Cycle(id=u, project="churn", trigger="manual", trigger_key=u, state=CycleState.TRAINING,
                                       started_at=now, updated_at=now),), {}),
            "cycle_claim_stale": (("churn", "me", now, now + 60), {}),
            "cycle_update": (("cycle-churn",), {"owner": None, "updated_at": now}),
            "cycle_get": (("cycle-churn",), {}),
            "cycle_list": ((), {}),
            "cache_put": ((u, "pipe", "step", run, {}, "fp", now), {}),
            "cache_lookup": (("key-churn", "pipe", "churn"), {}),
        }[call]


def _request(url: str, method: str, path: str, token: str | None, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, method=method, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def team(tmp_path: Path) -> Any:
    """A server whose store holds the users above (tokens made by the store's own calls, as the CLI does)."""
    from modelcycle.server.app import create_app
    from modelcycle.store import open_metadata_store

    settings = Settings.for_home(tmp_path / "server", capture=False)
    store = open_metadata_store(settings.store_uri)
    tokens: dict[str, str | None] = {"anonymous": None}
    for name, (grants, admin) in USERS.items():
        token = f"mc_{name}_{uuid.uuid4().hex}"
        store.user_add(name, admin, hashlib.sha256(token.encode()).hexdigest())
        for scope, role in grants.items():
            kind, target = scope.split(":")
            store.user_grant(name, kind, target, role)
        tokens[name] = token
    store.user_revoke("revoked")
    from modelcycle.store import open_artifact_store

    digest, _ = open_artifact_store(settings.artifact_uri).put_bytes(b"a blob of churn")
    world = World(store, digest)
    store.close()
    with running(create_app(settings)) as url:
        yield url, tokens, world, settings


