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
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelcycle.settings import Settings
from modelcycle.store.metadata.base import NewRun, WriteBatch
from modelcycle.store.rpc import CALLS, codec
from tests.conftest import running
from tests.server.conftest import _request

LEVEL = {"reader": 1, "writer": 2, "manager": 3, "admin": 3, "outsider": 0, "revoked": 0, "anonymous": 0}
WRITES_SOMETHING = {"writer", "manager", "admin", "outsider"}
HAS_A_ROLE = {"reader", "writer", "manager", "admin", "outsider"}

# call → what it needs on churn: 1 read, 2 write, 3 manage; "list" answers anyone with a role, filtered;
# "any" anyone with a role; "writes" anyone who may write something; "admin" admins only
NEEDS: dict[str, Any] = {
    "get_or_create_experiment": 2, "get_experiment": 1, "list_experiments": "list", "create_run": 2, "write": 2,
    "heartbeat": 2, "mark_lost": "any", "get_run": 1, "resolve_run_id": 1, "search_runs": 1, "search_page": 1, "count_runs": 1, "run_keys": 1,
    "get_metric_history": 1, "metric_histories": "list", "metric_keys": 1, "artifact_clash": 1, "get_environment": "any", "delete_run": 3,
    "referenced_digests": "admin", "create_model_version": 2, "set_model_version_tags": 2, "get_model_version": 1,
    "search_model_versions": "list", "list_registered_models": "list", "get_alias": 1, "get_aliases": 1,
    "move_alias": 3, "alias_events": 1, "save_verdict": 2, "list_verdicts": 1, "window_get": 1, "window_list": 1, "window_put": 2,
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


def test_every_call_blob_and_log_route_answers_only_whom_it_should(team: Any) -> None:
    url, tokens, world, settings = team
    assert set(NEEDS) == set(CALLS), "every call the server answers has an expected role here"
    unexpected = []
    for call in CALLS:
        for who, token in tokens.items():
            args, kwargs = world.args(call)
            status, body = _request(url, "POST", f"/api/v1/store/{call}", token, codec(call).encode_args(args, kwargs))
            allowed = _allowed(who, NEEDS[call])
            # allowed: anything but a refusal (a 404 or a 409 is the store's answer about the records)
            # refused: 401 without a live token; 403, or 404 for a run the user may not even see
            ok = status not in (401, 403) if allowed else (status == 401 if who in ("anonymous", "revoked")
                                                           else status in (403, 404))
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
              ("GET", "/api/v1/blobs", None, "admin"), ("GET", "/api/v1/openapi.json", None, "open"),
              ("POST", "/api/v1/models/churn/promote", b'{"version": 1, "force": true}', 3), ("GET", "/api/v1/me", None, "open")]
    # the prediction log: a model's folder and files by the role on the model; labels for every model: admins only here
    from modelcycle.store.predictions import log_root, model_dir, parquet_bytes, write_atomic
    from tests.server.test_logs import _rows

    day = time.strftime("%Y-%m-%d", time.gmtime())
    where = log_root(settings.log_uri)
    kept = write_atomic(_rows("churn", 3, time.time() - 5), f"{model_dir(where, 'predictions', 'churn')}/date={day}", root=where)
    logged = f"/api/v1/logs/{where.relative(kept)}"
    part = parquet_bytes(_rows("churn", 2, time.time() - 5))
    labels = parquet_bytes(_rows("churn", 2, time.time() - 5).assign(label=1))
    routes += [("GET", "/api/v1/logs/predictions", None, "any"), ("GET", "/api/v1/logs/predictions/model=churn", None, 1),
               ("GET", logged, None, 1), ("GET", "/api/v1/logs/labels", None, "any"),
               ("GET", "/api/v1/logs/labels/unassigned", None, "any")]  # labels for every model join every model's log
    routes += [("PUT", f"/api/v1/logs/predictions/model=churn/date={day}/part-{time.time_ns()}-{who}_a.parquet", part, 2)
               for who in tokens]
    routes += [("PUT", f"/api/v1/logs/labels/unassigned/date={day}/part-{time.time_ns()}-{who}_a.parquet", labels, "admin")
               for who in tokens]
    routes += [("DELETE", f"/api/v1/logs/predictions/model=churn/date={day}/part-1-{who}_gone.parquet", None, 2)
               for who in tokens]
    for method, path, body, need in routes:
        for who, token in tokens.items():
            if "/logs/" in path and method != "GET" and f"-{who}_" not in path:
                continue  # each user publishes (or deletes) a file of its own
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
    assert _cli(home, "grant", "ana", "model:churn=read").returncode == 0  # as `users add --grant` spells it
    missing = _cli(home, "grant", "ana", "model:churn")
    assert missing.returncode != 0 and "give the role too" in missing.stdout + missing.stderr
    listed = json.loads(_cli(home, "ls", "--json").stdout)
    assert listed[0]["name"] == "ana" and listed[0]["tokens"] == 0
    assert listed[0]["grants"] == {"experiment:churn": "write", "experiment:fraud": "read", "model:churn": "read"}


def test_a_token_revoked_during_a_run_ends_the_script_with_one_line(tmp_path: Path) -> None:
    """The user's script goes on logging after its token was revoked: at exit it says in one line that the last
    values were not written, and names the token as the reason; no traceback."""
    from modelcycle.server.app import create_app
    from modelcycle.store import open_metadata_store
    from modelcycle.tracking.client import Client

    home = tmp_path / "server"
    added = _cli(home, "add", "ana", "--grant", "experiment:churn=write", "--json")
    token = json.loads(added.stdout)["token"]
    script = ("import sys, modelcycle as mc\n"
              "mc.start_run(experiment='churn')\n"
              "mc.log_metric('auc', 0.5)\n"
              "mc.get_client().flush()\n"
              "print('flushed', flush=True)\n"
              "sys.stdin.readline()\n"
              "mc.log_metric('auc', 0.6, step=1)\n")
    with running(create_app(Settings.for_home(home, capture=False))) as url:
        env = {**os.environ, "MODELCYCLE_TRACKING_URI": url, "MODELCYCLE_TRACKING_TOKEN": token,
               "MODELCYCLE_HOME": str(tmp_path / "laptop"), "MODELCYCLE_CAPTURE": "0"}
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "flushed", proc.stderr.read()
            store = open_metadata_store(Settings.for_home(home).store_uri)
            store.user_revoke("ana")
            store.close()
            _refused_soon(Client(Settings.from_env({"MODELCYCLE_TRACKING_URI": url, "MODELCYCLE_TRACKING_TOKEN": token,
                                                    "MODELCYCLE_HOME": str(tmp_path / "other")})))
            _, err = proc.communicate("go\n", timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
    assert "Traceback" not in err, err
    assert "the last logged values were not written" in err and "not one this server knows" in err, err


def test_a_promotion_the_user_may_not_make_still_shows_and_keeps_the_verdict(tmp_path: Path) -> None:
    """`models validate --promote` by a user who may write the model but not manage it: the verdict is shown and stored,
    then one line says the alias was not moved and why; the exit code says it failed."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelcycle.registry import Registry
    from modelcycle.server.app import create_app
    from modelcycle.tracking.client import Client

    home = tmp_path / "server"
    lead = json.loads(_cli(home, "add", "lead", "--admin", "--json").stdout)["token"]
    ana = json.loads(_cli(home, "add", "ana", "--grant", "experiment:*=read", "--grant", "model:churn=write", "--json").stdout)["token"]
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (X["a"] > 0).astype(int)
    X.assign(y=y).to_parquet(tmp_path / "test.parquet")
    (tmp_path / "policy.yaml").write_text("thresholds: {accuracy: '>= 0.5'}\n")
    with running(create_app(Settings.for_home(home, capture=False))) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
        c = Client(Settings.from_env({**env, "MODELCYCLE_HOME": str(tmp_path / "lead"), "MODELCYCLE_TRACKING_URI": url,
                                      "MODELCYCLE_TRACKING_TOKEN": lead, "MODELCYCLE_CAPTURE": "0"}))
        with c.start_run(experiment="churn"):
            logged = c.log_model(LogisticRegression().fit(X, y), reference_data=X)
        Registry(c).register_model(logged, "churn")
        c.close()
        out = subprocess.run([sys.executable, "-m", "modelcycle", "models", "validate", "churn", "1", "--data",
                              str(tmp_path / "test.parquet"), "--policy", str(tmp_path / "policy.yaml"), "--promote", "champion"],
                             env={**env, "MODELCYCLE_HOME": str(tmp_path / "ana"), "MODELCYCLE_TRACKING_URI": url,
                                  "MODELCYCLE_TRACKING_TOKEN": ana, "MODELCYCLE_CAPTURE": "0", "COLUMNS": "200"},
                             capture_output=True, text=True, timeout=300)
        said = out.stdout + out.stderr
        assert out.returncode == 1 and "PASSED" in said and "accuracy" in said, said
        assert "churn@champion was not moved" in said and "may not manage model 'churn'" in said and "Traceback" not in said
        check = Client(Settings.from_env({**env, "MODELCYCLE_HOME": str(tmp_path / "lead"), "MODELCYCLE_TRACKING_URI": url,
                                          "MODELCYCLE_TRACKING_TOKEN": lead}))
        assert [v.passed for v in check.store.list_verdicts("churn", 1)] == [True]
        assert check.store.get_alias("churn", "champion") is None
        check.close()


def test_a_replica_whose_role_is_granted_late_serves_the_version_without_a_restart(tmp_path: Path) -> None:
    """A replica's token may not read the experiment a new version came from: the version is not served and counted as
    a failed swap; once an admin grants the role, the replica serves it on its own."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from modelcycle.registry import Registry
    from modelcycle.server.app import create_app
    from modelcycle.serving.holder import ModelHolder
    from modelcycle.store import open_metadata_store
    from modelcycle.tracking.client import Client

    home = tmp_path / "server"
    lead = json.loads(_cli(home, "add", "lead", "--admin", "--json").stdout)["token"]
    replica = json.loads(_cli(home, "add", "replica", "--grant", "experiment:first=read", "--grant", "model:m=write",
                              "--json").stdout)["token"]
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X["a"] > 0).astype(int)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELCYCLE_")}
    with running(create_app(Settings.for_home(home, capture=False))) as url:
        def client(token: str, name: str) -> Client:
            return Client(Settings.from_env({**env, "MODELCYCLE_HOME": str(tmp_path / name), "MODELCYCLE_TRACKING_URI": url,
                                             "MODELCYCLE_TRACKING_TOKEN": token, "MODELCYCLE_CAPTURE": "0"}))

        c = client(lead, "lead")
        registry = Registry(c)
        for experiment, C in (("first", 1.0), ("retrained", 0.5)):
            with c.start_run(experiment=experiment):
                registry.register_model(c.log_model(LogisticRegression(C=C).fit(X, y), reference_data=X), "m")
        registry.set_alias("m", "champion", 1)
        holder = ModelHolder(Registry(client(replica, "replica")), "models:/m@champion", poll=0.05)
        registry.set_alias("m", "champion", 2)
        assert holder.check() is False and holder.version == 1 and holder.failures == 1
        assert "trying again in" in holder.last_error
        store = open_metadata_store(Settings.for_home(home).store_uri)
        store.user_grant("replica", "experiment", "retrained", "read")
        store.close()
        deadline = time.monotonic() + 60
        while not holder.check() and holder.version != 2:
            assert time.monotonic() < deadline, holder.last_error
            time.sleep(0.1)
        assert holder.version == 2
        c.close()


def test_promotion_and_rollback_by_the_server_follow_the_registrys_rules_and_record_the_user(team: Any) -> None:
    """What the web UI's buttons call: the gate decides as for `modelcycle models promote`, managers may force past it
    (recorded as forced), and the audit log names the user whose token made the move."""
    url, tokens, world, _ = team
    promote = "/api/v1/models/churn/promote"
    status, body = _request(url, "POST", promote, tokens["manager"], b'{"version": 1}')
    assert status == 409 and b"there is no verdict" in body  # no verdict stored: the gate refuses, as the CLI does
    for who in ("reader", "writer", "outsider"):
        assert _request(url, "POST", promote, tokens[who], b'{"version": 1, "force": true}')[0] == 403, who
    assert _request(url, "POST", promote, None, b'{"version": 1, "force": true}')[0] == 401
    status, body = _request(url, "POST", promote, tokens["manager"], b'{"version": 1, "force": true, "reason": "hotfix"}')
    assert status == 200, body
    event = json.loads(body)
    assert (event["actor"], event["forced"], event["to_version"]) == ("manager", True, 1) and "hotfix" in event["reason"]
    for bad in (b'{"version": 0}', b'{"version": "x"}', b'{"version": 1, "alias": "no/such"}', b'{"version": 1, "extra": 1}',
                b'{"version": 99}', b"not json"):
        status, body = _request(url, "POST", promote, tokens["manager"], bad)
        assert status in (400, 404, 422) and b'"error"' in body, (bad, status, body)
    status, body = _request(url, "POST", "/api/v1/models/churn/rollback", tokens["manager"], b"{}")
    assert status == 400 and b"no earlier version" in body
    store_version = world.args("create_model_version")
    status, _ = _request(url, "POST", "/api/v1/store/create_model_version", tokens["manager"],
                         codec("create_model_version").encode_args(*store_version))
    assert status == 200
    assert _request(url, "POST", promote, tokens["admin"], b'{"version": 2, "force": true}')[0] == 200
    assert _request(url, "POST", "/api/v1/models/churn/rollback", tokens["reader"], b"{}")[0] == 403
    status, body = _request(url, "POST", "/api/v1/models/churn/rollback", tokens["manager"], b'{"reason": "bad canary"}')
    assert status == 200, body
    event = json.loads(body)
    assert (event["action"], event["actor"], event["from_version"], event["to_version"]) == ("rollback", "manager", 2, 1)


def test_a_datasets_profile_is_served_as_a_page_that_runs_nothing_to_whoever_may_read_the_run(team: Any) -> None:
    import pandas as pd

    from modelcycle.data import profile
    from modelcycle.store import open_artifact_store, open_metadata_store

    url, tokens, world, settings = team
    data = profile(pd.DataFrame({"tenure": [1, 2, 3], "plan": ["a", "b", "<script>alert(1)</script>"]})).to_bytes()
    digest, size = open_artifact_store(settings.artifact_uri).put_bytes(data)
    store = open_metadata_store(settings.store_uri)
    try:
        store.write(WriteBatch(artifacts=[(world.run, "datasets/train.input.profile", digest, size, time.time())]))
    finally:
        store.close()
    page = f"/api/v1/runs/{world.run}/datasets/train/input/profile.html"
    request = urllib.request.Request(url + page, headers={"Authorization": f"Bearer {tokens['reader']}"})
    with urllib.request.urlopen(request, timeout=60) as r:
        body, csp = r.read().decode(), r.headers["Content-Security-Policy"]
    assert "tenure" in body and "<script>alert(1)</script>" not in body and csp.startswith("sandbox;") and "script-src" not in csp
    for who, path, expected in (("outsider", page, 404), ("anonymous", page, 401), ("revoked", page, 401),
                                ("reader", f"/api/v1/runs/{world.fraud_run}/datasets/train/input/profile.html", 404),
                                ("reader", f"/api/v1/runs/{world.run}/datasets/..%2f..%2fx/input/profile.html", 404),
                                ("reader", f"/api/v1/runs/{world.run}/datasets/other/input/profile.html", 404)):
        assert _request(url, "GET", path, tokens[who])[0] == expected, (who, path)
