"""Who may do what on the team server: every route × every kind of user, against a real server over HTTP.

The expected role of each call is written here, independently of the server's rules: a rule that is missing, too
lenient or too strict makes the matrix fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
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
from modelcycle.store.rpc import CALLS, codec
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
LEVEL = {"reader": 1, "writer": 2, "manager": 3, "admin": 3, "outsider": 0, "revoked": 0, "anonymous": 0}
WRITES_SOMETHING = {"writer", "manager", "admin", "outsider"}
HAS_A_ROLE = {"reader", "writer", "manager", "admin", "outsider"}

# call → what it needs on churn: 1 read, 2 write, 3 manage; "list" answers anyone with a role, filtered;
# "any" anyone with a role; "writes" anyone who may write something; "admin" admins only
NEEDS: dict[str, Any] = {
    "get_or_create_experiment": 2, "get_experiment": 1, "list_experiments": "list", "create_run": 2, "write": 2,
    "heartbeat": 2, "mark_lost": "writes", "get_run": 1, "resolve_run_id": 1, "search_runs": 1, "search_page": 1,
    "get_metric_history": 1, "metric_keys": 1, "artifact_clash": 1, "get_environment": "any", "delete_run": 3,
    "referenced_digests": "admin", "create_model_version": 2, "set_model_version_tags": 2, "get_model_version": 1,
    "search_model_versions": "list", "list_registered_models": "list", "get_alias": 1, "get_aliases": 1,
    "move_alias": 3, "alias_events": 1, "save_verdict": 2, "list_verdicts": 1, "window_get": 1, "window_put": 2,
    "alert_firing": 1, "alert_raise": 2, "alert_resolve": 2, "alert_delivery": 2, "alert_list": "list",
    "alert_get": 1, "cycle_claim_new": 2, "cycle_claim_stale": 2, "cycle_update": 2, "cycle_get": 1,
    "cycle_list": "list", "cache_put": 2, "cache_lookup": "list",
}


def _allowed(who: str, need: Any) -> bool:
    if who in ("anonymous", "revoked"):
        return False
    if need == "admin":
        return who == "admin"
    if need in ("list", "any"):
        return who in HAS_A_ROLE
    if need == "writes":
        return who in WRITES_SOMETHING
    return LEVEL[who] >= need


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
            "get_metric_history": ((run, "m"), {}),
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


def test_every_call_and_every_blob_route_answers_only_whom_it_should(team: Any) -> None:
    url, tokens, world, _ = team
    assert set(NEEDS) == set(CALLS), "every call the server answers has an expected role here"
    unexpected = []
    for call in CALLS:
        for who, token in tokens.items():
            args, kwargs = world.args(call)
            status, body = _request(url, "POST", f"/api/v1/store/{call}", token, codec(call).encode_args(args, kwargs))
            allowed = _allowed(who, NEEDS[call])
            # allowed: anything but a refusal (a 404 or a 409 is the store's answer about the records)
            ok = status not in (401, 403) if allowed else status == (401 if who in ("anonymous", "revoked") else 403)
            if status >= 500 or not ok or (not allowed and 200 <= status < 300) or b"does not fit this call" in body:
                unexpected.append((call, who, status, body[:200]))
            if allowed and NEEDS[call] == "list" and 200 <= status < 300:
                text = body.decode()
                sees_churn = any(s in text for s in ('"churn"', "cycle-churn", "alert-churn", world.run))
                sees_fraud = any(s in text for s in ('"fraud"', "cycle-fraud", "alert-fraud", world.fraud_run))
                if (who == "outsider" and sees_churn) or (who in ("reader", "writer", "manager") and sees_fraud):
                    unexpected.append((call, who, "listed what it may not read", body[:200]))
    blob = f"/api/v1/blobs/{world.digest}"
    new = b"a new blob"
    routes = [("HEAD", blob, None, "any"), ("GET", blob, None, "any"),
              ("PUT", f"/api/v1/blobs/{hashlib.sha256(new).hexdigest()}", new, "writes"),
              ("GET", "/api/v1/blobs", None, "admin"), ("GET", "/api/v1/openapi.json", None, "open")]
    for method, path, body, need in routes:
        for who, token in tokens.items():
            status, _ = _request(url, method, path, token, body)
            allowed = who not in ("anonymous", "revoked") if need == "open" else _allowed(who, need)
            if status >= 500 or allowed != (200 <= status < 300):
                unexpected.append((method, path, who, status))
    for who, token in tokens.items():  # last: deleting the blob
        status, _ = _request(url, "DELETE", blob, token)
        if status >= 500 or _allowed(who, "admin") != (200 <= status < 300):
            unexpected.append(("DELETE", blob, who, status))
    assert unexpected == []


def test_writes_record_the_authenticated_user_whatever_the_client_claims(team: Any) -> None:
    url, tokens, world, settings = team
    from modelcycle.store import open_metadata_store

    run = uuid.uuid4().hex
    args, _ = world.args("create_run")
    new = args[0]
    spoof = NewRun(id=run, experiment_id=new.experiment_id, name="spoof", start_time=new.start_time,
                   tags={"modelcycle.user": "admin"})
    for call, a, k, token in (
        ("create_run", (spoof,), {}, tokens["writer"]),
        ("write", (WriteBatch(tags=[(run, "modelcycle.user", "admin")]),), {}, tokens["writer"]),
        ("create_model_version", *world.args("create_model_version"), tokens["writer"]),
        ("move_alias", *world.args("move_alias"), tokens["manager"]),
    ):
        status, body = _request(url, "POST", f"/api/v1/store/{call}", token, codec(call).encode_args(a, k))
        assert status == 200, body
    store = open_metadata_store(settings.store_uri)
    try:
        assert store.get_run(run).tags["modelcycle.user"] == "writer"
        versions = store.search_model_versions("name = 'churn'")
        assert max(versions, key=lambda v: v.version).created_by == "writer"
        assert store.alias_events("churn")[-1].actor == "manager"
    finally:
        store.close()


def test_a_run_update_cannot_move_a_run_or_rewrite_its_record(team: Any) -> None:
    url, tokens, world, settings = team
    for values in ({"experiment_id": world.fraud}, {"records": "[{}, {}]"}, {"status": "HACKED"}, {}):
        body = codec("write").encode_args((WriteBatch(updates=[(world.run, values)]),), {})
        status, answer = _request(url, "POST", "/api/v1/store/write", tokens["admin"], body)
        assert status == 400, (values, answer)
        assert json.loads(answer)["error"]["code"] == "InvalidInputError"
    from modelcycle.store import open_metadata_store

    store = open_metadata_store(settings.store_uri)
    try:
        assert store.get_run(world.run).experiment == "churn"
    finally:
        store.close()


def test_mark_lost_follows_the_servers_timeout_not_the_callers(team: Any) -> None:
    """A caller's "older than now" would mark every running run lost; the server's heartbeat timeout decides."""
    url, tokens, world, settings = team
    body = codec("mark_lost").encode_args((time.time() + 3600,), {})
    status, _ = _request(url, "POST", "/api/v1/store/mark_lost", tokens["outsider"], body)
    assert status == 200
    from modelcycle.store import open_metadata_store

    store = open_metadata_store(settings.store_uri)
    try:
        assert store.get_run(world.run).status.value == "RUNNING"
    finally:
        store.close()


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MODELCYCLE_HOME": str(home)}
    for k in ("MODELCYCLE_SERVER_TOKEN", "MODELCYCLE_TRACKING_URI", "MODELCYCLE_STORE_URI"):
        env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "modelcycle", "server", "users", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def _refused_soon(c: Any, deadline: float = 60.0) -> None:
    from modelcycle.errors import ConfigurationError

    end = time.monotonic() + deadline
    while True:
        try:
            c.store.list_experiments()
        except ConfigurationError as e:
            assert "refused the request" in str(e)
            return
        assert time.monotonic() < end, "a revoked token was still answered"
        time.sleep(0.1)


def test_users_are_added_rotated_and_revoked_from_the_command_line(tmp_path: Path) -> None:
    from modelcycle.errors import PermissionDeniedError
    from modelcycle.server.app import create_app
    from modelcycle.tracking.client import Client

    home = tmp_path / "server"
    added = _cli(home, "add", "ana", "--grant", "experiment:churn=write", "--json")
    assert added.returncode == 0, added.stderr
    token = json.loads(added.stdout)["token"]
    assert token not in (home / "modelcycle.db").read_bytes().decode("latin-1")  # only its hash is kept
    bad = _cli(home, "add", "bob", "--grant", "experiment:churn=owner")
    assert bad.returncode == 1 and "not a role" in bad.stderr and "Traceback" not in bad.stderr
    assert _cli(home, "add", "ana").returncode == 1  # taken

    def client(tok: str | None) -> Client:
        env = {"MODELCYCLE_HOME": str(tmp_path / "laptop"), "MODELCYCLE_TRACKING_URI": url, "MODELCYCLE_CAPTURE": "0"}
        if tok:
            env["MODELCYCLE_TRACKING_TOKEN"] = tok
        return Client(Settings.from_env(env))

    from modelcycle.store import open_metadata_store

    store = open_metadata_store(Settings.for_home(home).store_uri)
    store.get_or_create_experiment("fraud")
    store.close()
    with running(create_app(Settings.for_home(home, capture=False))) as url:
        ana = client(token)
        with ana.start_run(experiment="churn") as run:
            run.log_metric("auc", 0.9)
        ana.close()
        with pytest.raises(PermissionDeniedError, match="may not write experiment 'fraud'"):
            client(token).store.get_or_create_experiment("fraud")
        assert {e.name for e in client(token).list_experiments()} == {"churn"}
        rotated = _cli(home, "rotate", "ana", "--json")
        new = json.loads(rotated.stdout)["token"]
        assert _cli(home, "grant", "ana", "experiment:fraud", "read").returncode == 0
        _refused_soon(client(token))  # answers about a token are kept for two seconds
        assert {e.name for e in client(new).list_experiments()} == {"churn", "fraud"}
        assert _cli(home, "revoke", "ana").returncode == 0
        _refused_soon(client(new))
    listed = json.loads(_cli(home, "ls", "--json").stdout)
    assert listed[0]["name"] == "ana" and listed[0]["tokens"] == 0
    assert listed[0]["grants"] == {"experiment:churn": "write", "experiment:fraud": "read"}
