"""What attackers tried against the team server, each now a case: records of experiments a user may not manage,
forged times and verdicts, a server left open once every token was revoked, numbers out of range, oversized calls."""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from modelcycle.settings import Settings
from modelcycle.store.metadata.base import NewRun, WriteBatch
from modelcycle.store.rpc import codec
from tests.conftest import running
from tests.server.conftest import _request


def _call(url: str, token: str | None, call: str, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    status, body = _request(url, "POST", f"/api/v1/store/{call}", token, codec(call).encode_args(args, kwargs))
    return status, json.loads(body) if body else None


def _store(settings: Settings) -> Any:
    from modelcycle.store import open_metadata_store

    return open_metadata_store(settings.store_uri)


def test_runs_are_named_whole_and_a_delete_reaches_only_what_the_user_manages(team: Any) -> None:
    url, tokens, world, settings = team
    for spelling in (world.run[:8], world.run.upper(), f" {world.run}", world.run[:31]):
        status, _ = _call(url, tokens["outsider"], "delete_run", spelling)
        assert status == 404, spelling
    store = _store(settings)
    child = uuid.uuid4().hex
    store.write(WriteBatch(runs=[NewRun(id=child, experiment_id=world.churn, name="child", start_time=time.time(),
                                        parent_id=world.fraud_run)]))
    store.close()
    status, body = _call(url, tokens["outsider"], "delete_run", world.fraud_run)  # manages fraud, not churn
    assert status in (403, 404), body
    store = _store(settings)
    try:
        assert store.get_run(world.run).id == world.run and store.get_run(child).id == child
        assert store.get_run(world.fraud_run).id == world.fraud_run
    finally:
        store.close()


def test_verdicts_and_alias_moves_carry_the_servers_time_and_the_truth_about_the_gate(team: Any) -> None:
    url, tokens, _, settings = team
    future = 4102444800.0  # 2100: would be "the newest verdict" for ever
    forged = uuid.uuid4().hex
    assert _call(url, tokens["writer"], "save_verdict", forged, "churn", 1, True, future, None, {})[0] == 200
    failed = uuid.uuid4().hex
    assert _call(url, tokens["manager"], "save_verdict", failed, "churn", 1, False, time.time(), None, {})[0] == 200
    status, _ = _call(url, tokens["manager"], "move_alias", "churn", "champion", 1, action="promote", actor="x", at=0.0,
                      verdict_id="no-such-verdict")
    assert status == 400
    status, _ = _call(url, tokens["manager"], "move_alias", "churn", "champion", 1, action="promote", actor="x", at=0.0,
                      reason="verdict passed", verdict_id=failed, forced=False)
    assert status == 200
    store = _store(settings)
    try:
        verdicts = {v.id: v for v in store.list_verdicts("churn", 1)}
        assert verdicts[forged].created_at < time.time() + 60
        event = store.alias_events("churn", "champion")[-1]
        assert event.forced and event.at > time.time() - 600 and event.actor == "manager"
    finally:
        store.close()


def test_a_server_whose_tokens_were_all_revoked_stays_closed(tmp_path: Path) -> None:
    from modelcycle.server.app import create_app

    settings = Settings.for_home(tmp_path / "server", capture=False)
    store = _store(settings)
    store.user_add("boss", True, hashlib.sha256(b"tok").hexdigest())
    store.user_revoke("boss")
    store.close()
    with running(create_app(settings)) as url:
        for token in (None, "tok"):
            status, _ = _call(url, token, "get_or_create_experiment", "owned")
            assert status == 401
        assert _request(url, "GET", "/api/v1/blobs", None)[0] == 401


def test_numbers_out_of_range_clashing_ids_and_oversized_calls_are_the_callers_errors(team: Any) -> None:
    url, tokens, world, settings = team
    admin = tokens["admin"]
    for call, args, kwargs in (
        ("write", (WriteBatch(metrics=[(world.run, "auc", 1.0, 2**63, time.time())]),), {}),
        ("search_runs", (["churn"],), {"limit": 2**70}),
        ("alert_list", (), {"limit": 2**64}),
        ("window_get", ("churn", "live", 2**64, [0.0]), {}),
    ):
        status, body = _call(url, admin, call, *args, **kwargs)
        assert status == 400, (call, body)
    status, body = _call(url, admin, "save_verdict", "same-id", "churn", 1, True, time.time(), None, {})
    status, body = _call(url, admin, "save_verdict", "same-id", "churn", 1, True, time.time(), None, {})
    assert status == 409 and str(settings.home) not in json.dumps(body), body
    status, body = _request(url, "GET", "/api/v1/blobs/" + "0" * 64, admin)
    assert status == 404 and str(settings.home).encode() not in body
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as s:
        s.sendall(b"POST /api/v1/store/get_experiment HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + admin.encode() + b"\r\nContent-Length: 209715200\r\n\r\n{")
        assert b" 413 " in s.recv(4096).split(b"\r\n")[0]
    digest = hashlib.sha256(b"x").hexdigest()
    status, _ = _call(url, admin, "write", WriteBatch(artifacts=[(world.run, "a.txt", digest + "\n", 1, time.time())]))
    assert status == 400


def test_listings_are_filtered_before_they_are_cut_and_environments_match_their_id(team: Any) -> None:
    url, tokens, world, settings = team
    store = _store(settings)
    for i in range(5):  # five newer alerts on a model the outsider may not read
        store.alert_raise({"id": f"newer-{i}", "model": "churn", "rule": f"r{i}", "raised_at": time.time() + i, "message": "m"})
    store.close()
    status, body = _call(url, tokens["outsider"], "alert_list", limit=5)
    assert status == 200 and [a["id"] for a in body["value"]] == ["alert-fraud"]
    env = {"python": "3.11", "packages": {"numpy": "1.0"}}
    run = NewRun(id=uuid.uuid4().hex, experiment_id=world.churn, name="e", start_time=time.time(), environment=env)
    run.context.__dict__["environment_id"] = "e" * 64  # not the hash of env: someone else's id
    status, body = _call(url, tokens["writer"], "create_run", run)
    assert status == 400 and "environment" in body["error"]["message"]


def test_reproduce_never_hands_pip_a_recorded_option() -> None:
    from modelcycle.tracking.reproduce import _package_changes

    planted = {"--index-url=http://evil.invalid/simple": "1", "numpy": "1.0.0 --extra-index-url=http://x", "pip": "0.1"}
    assert [c[0] for c in _package_changes(planted)] == ["pip"]
