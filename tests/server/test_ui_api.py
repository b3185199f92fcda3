"""What the web UI calls on the server, as an attacker calls it: bounds on searches, the registry's routes, the shapes of
records others read, and the headers of every answer."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from modelcycle.entities import Cycle, CycleState
from modelcycle.store.metadata.base import NewRun, WriteBatch
from modelcycle.store.rpc import codec
from tests.server.conftest import _request


def _call(url: str, token: str | None, name: str, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    status, body = _request(url, "POST", f"/api/v1/store/{name}", token, codec(name).encode_args(args, kwargs))
    return status, json.loads(body) if body else None


def test_a_filter_too_wide_to_run_cheaply_is_refused_at_once(team: Any) -> None:
    url, tokens, _, _ = team
    wide = " or ".join(f"params.p{i % 20} = 'x{i}'" for i in range(400))
    for call in ("search_page", "count_runs"):
        t = time.monotonic()
        status, body = _call(url, tokens["reader"], call, ["churn"], wide)
        assert status == 400 and "at most 50 comparisons" in body["error"]["message"], body
        assert time.monotonic() - t < 10  # refused before any query ran
    status, body = _call(url, tokens["reader"], "search_page", ["churn"], "metrics.m > 0", [f"metrics.m{i}" for i in range(11)])
    assert status == 400 and "at most 10 keys" in body["error"]["message"]


def test_a_search_returns_at_most_a_page_per_call_and_the_client_pages(team: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import modelcycle.server.access as access
    import modelcycle.store.metadata.http as http
    from modelcycle.store.metadata.http import HttpMetadataStore

    url, tokens, _, _ = team
    for limit in (None, 10_001):
        status, body = _call(url, tokens["reader"], "search_page", ["churn"], None, None, limit)
        assert status == 400 and "at most 10,000 runs per call" in body["error"]["message"]
    status, body = _call(url, tokens["reader"], "count_runs", [f"e{i}" for i in range(1001)])
    assert status == 400 and "at most 1,000 experiments" in body["error"]["message"]
    monkeypatch.setattr(access, "MAX_PAGE", 3)  # the server runs in this process: a small page shows the paging
    monkeypatch.setattr(http, "PAGE", 3)
    store = HttpMetadataStore(url, token=tokens["admin"])
    try:
        churn = store.get_experiment("churn").id
        store.write(WriteBatch(runs=[NewRun(id=uuid.uuid4().hex, experiment_id=churn, name=f"n{i}", start_time=float(i))
                                     for i in range(7)]))
        everything = store.search_runs(["churn"], limit=None, order_by=["start_time ASC"])
        assert len(everything) == 8 and len({r.id for r in everything}) == 8  # 7 new + the world's run, each once
        assert [r.name for r in store.search_runs(["churn"], limit=5, order_by=["start_time ASC"])] == [f"n{i}" for i in range(5)]
    finally:
        store.close()


def test_promotion_takes_exact_types_and_a_reader_is_refused_before_anything_else(team: Any) -> None:
    url, tokens, _, _ = team
    promote = "/api/v1/models/churn/promote"
    for body in (b'{"version": "1", "force": true}', b'{"version": 1, "force": "yes"}', b'{"version": 1, "force": 1}',
                 b'{"version": 1.0, "force": true}'):
        status, answer = _request(url, "POST", promote, tokens["manager"], body)
        assert status == 400 and b"does not fit this call" in answer, body
    for body in (b'{"alias": "no-such-alias"}', b'{"alias": "champion"}'):  # the role is checked first
        assert _request(url, "POST", "/api/v1/models/churn/rollback", tokens["reader"], body)[0] == 403
    assert _request(url, "POST", promote, tokens["reader"], b'{"version": 99}')[0] == 403


def test_records_others_read_keep_their_shape(team: Any) -> None:
    url, tokens, world, _ = team
    now = time.time()
    status, body = _call(url, tokens["writer"], "save_verdict", "v-bad", "churn", 1, False, 1.0, None, {"rows": "x"})
    assert status == 400 and "whole number" in body["error"]["message"]
    status, body = _call(url, tokens["admin"], "list_verdicts", "churn")
    assert status == 200
    status, body = _call(url, tokens["writer"], "create_model_version", "mod/with/slash", run_id=world.run, source="s",
                         artifact_path="model", hash="h" * 64, flavour="sklearn", created_at=now, created_by="x",
                         description=None, tags={})
    assert status == 400, body
    forged = Cycle(id=uuid.uuid4().hex, project="fraud", trigger="t", trigger_key=uuid.uuid4().hex, state=CycleState.DONE,
                   started_at=now, updated_at=now, model="churn", version=1)
    assert _call(url, tokens["outsider"], "cycle_claim_new", forged)[0] == 403  # writes fraud, not the model churn
    far = Cycle(id=uuid.uuid4().hex, project="churn", trigger="t", trigger_key=uuid.uuid4().hex, state=CycleState.TRAINING,
                started_at=1e300, updated_at=now)
    status, body = _call(url, tokens["writer"], "cycle_claim_new", far)
    assert status == 400 and "started_at" in body["error"]["message"]
    status, body = _call(url, tokens["writer"], "cycle_update", "cycle-churn", updated_at=float("nan"))
    assert status == 400


def test_every_answer_tells_browsers_not_to_guess_its_type(team: Any) -> None:
    import urllib.request

    url, tokens, world, _ = team
    for path in (f"/api/v1/blobs/{world.digest}", "/api/v1/health", "/api/v1/openapi.json", "/"):
        req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {tokens['admin']}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.headers.get_all("X-Content-Type-Options") == ["nosniff"], path


def test_me_says_who_a_token_names_and_its_roles(team: Any, tmp_path: Any) -> None:
    from modelcycle.server.app import create_app
    from modelcycle.settings import Settings
    from tests.conftest import running

    url, tokens, _, _ = team
    status, body = _request(url, "GET", "/api/v1/me", tokens["reader"])
    assert status == 200 and json.loads(body) == {"name": "reader", "admin": False, "signed_in": True,
                                                  "roles": {"experiment:churn": "read", "model:churn": "read"}}
    assert json.loads(_request(url, "GET", "/api/v1/me", tokens["admin"])[1])["admin"] is True
    assert _request(url, "GET", "/api/v1/me", None)[0] == 401
    with running(create_app(Settings.for_home(tmp_path / "open", capture=False))) as open_url:  # asks for no token
        assert json.loads(_request(open_url, "GET", "/api/v1/me", None)[1]) == {"name": None, "admin": True, "signed_in": False,
                                                                                 "roles": {}}
