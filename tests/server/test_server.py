"""The team server: the Python API unchanged against it with only its URL and token, and its front door."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from modelcycle.settings import Settings
from modelcycle.tracking.client import Client
from tests.conftest import running


def _client(url: str, home: Path, token: str | None) -> Client:
    env = {"MODELCYCLE_HOME": str(home), "MODELCYCLE_TRACKING_URI": url, "MODELCYCLE_CAPTURE": "0"}
    if token:
        env["MODELCYCLE_TRACKING_TOKEN"] = token
    return Client(Settings.from_env(env))


def test_a_laptop_with_only_the_url_and_token_tracks_searches_and_shares_artifacts(tmp_path: Path) -> None:
    """Two "laptops" (separate homes) know only the server's URL and token: one logs a run with an artifact, the other
    finds it by a filter and downloads the artifact; the records and blobs are in the server's stores only."""
    from modelcycle.server.app import create_app

    server_home = tmp_path / "server"
    with running(create_app(Settings.for_home(server_home, capture=False), token="s3cret")) as url:
        alice = _client(url, tmp_path / "alice", "s3cret")
        (tmp_path / "report.txt").write_text("auc went up")
        with alice.start_run(experiment="churn") as run:
            run.log_params({"C": 0.5, "model": "lr"})
            run.log_metrics({"auc": 0.91, "loss": float("nan")})
            run.set_tags({"team": "risk"})
            run.log_artifact(tmp_path / "report.txt")
        alice.close()
        bob = _client(url, tmp_path / "bob", "s3cret")
        found = bob.search_runs("churn", "metrics.auc > 0.9 and params.model = 'lr'", ["metrics.auc DESC"], output="list")
        assert [r.id for r in found] == [run.id]
        assert found[0].params == {"C": "0.5", "model": "lr"} and found[0].tags["team"] == "risk"
        got = bob.get_run(run.id)
        assert got.metrics["auc"] == 0.91 and got.metrics["loss"] != got.metrics["loss"]  # NaN travels as NaN
        path = bob.download_artifacts(run.id, "report.txt", tmp_path / "bob-downloads")
        assert Path(path).read_text() == "auc went up"
        bob.close()
        request = urllib.request.Request(url + "/api/v1/openapi.json", headers={"Authorization": "Bearer s3cret"})
        paths = json.loads(urllib.request.urlopen(request, timeout=30).read())["paths"]
        assert {"/api/v1/store/search_page", "/api/v1/store/write", "/api/v1/blobs/{digest}"} <= set(paths)
    assert (server_home / "modelcycle.db").exists() and any((server_home / "artifacts").rglob("*"))
    for laptop in ("alice", "bob"):
        assert not (tmp_path / laptop / "modelcycle.db").exists() and not (tmp_path / laptop / "artifacts").exists()


def test_without_the_token_nothing_is_answered_but_health(tmp_path: Path) -> None:
    from modelcycle.errors import ConfigurationError
    from modelcycle.server.app import create_app

    with running(create_app(Settings.for_home(tmp_path / "server", capture=False), token="s3cret")) as url:
        for token in (None, "wrong", "s3cre"):
            c = _client(url, tmp_path / "eve", token)
            with pytest.raises(ConfigurationError, match="refused the request"):
                c.store.list_experiments()
        for near in ("s3cret ", " s3cret", "s3cret\n", "s3\u200bcret"):  # HTTP would trim the spaces: never sent
            with pytest.raises(ConfigurationError, match="MODELCYCLE_TRACKING_TOKEN holds a space or an invisible"):
                _client(url, tmp_path / "eve", near)
        for path, method in (("/api/v1/store/list_experiments", "POST"), ("/api/v1/blobs", "GET"),
                             ("/api/v1/openapi.json", "GET"), ("/api/v1/blobs/" + "0" * 64, "GET")):
            request = urllib.request.Request(url + path, method=method, data=b"{}" if method == "POST" else None,
                                             headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(request, timeout=30)
            assert e.value.code == 401
        assert urllib.request.urlopen(url + "/api/v1/health", timeout=30).status == 200


def test_a_foreign_host_header_is_refused_on_loopback(tmp_path: Path) -> None:
    """DNS rebinding: a page that rebinds its own name to 127.0.0.1 sends its own name as the Host."""
    from modelcycle.server.app import create_app

    with running(create_app(Settings.for_home(tmp_path / "server", capture=False))) as url:
        request = urllib.request.Request(url + "/api/v1/store/list_experiments", method="POST", data=b"{}",
                                         headers={"Content-Type": "application/json", "Host": "evil.example"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=30)
        assert e.value.code == 400
        ok = urllib.request.Request(url + "/api/v1/store/list_experiments", method="POST", data=b"{}",
                                    headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(ok, timeout=30).status == 200


def test_an_upload_whose_bytes_do_not_match_its_name_is_refused_and_not_kept(tmp_path: Path) -> None:
    import hashlib

    from modelcycle.server.app import create_app

    settings = Settings.for_home(tmp_path / "server", capture=False)
    with running(create_app(settings)) as url:
        name = hashlib.sha256(b"the real bytes").hexdigest()
        request = urllib.request.Request(f"{url}/api/v1/blobs/{name}", method="PUT", data=b"other bytes")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(request, timeout=30)
        assert e.value.code == 400 and b"hash to" in e.value.read()
        for bad in ("..%2f..%2fetc%2fpasswd", "../../etc/passwd", "A" * 64, "%2e%2e"):
            request = urllib.request.Request(f"{url}/api/v1/blobs/{bad}", method="PUT", data=b"x")
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(request, timeout=30)
            assert e.value.code in (400, 404)
    assert [p for p in (tmp_path / "server" / "artifacts").rglob("*") if p.is_file()] == []
    assert [p for p in (tmp_path / "server" / "server-uploads").iterdir()] == []


def test_the_command_refuses_a_network_address_without_a_token_then_serves_with_one(tmp_path: Path) -> None:
    env = {**os.environ, "MODELCYCLE_HOME": str(tmp_path / "server")}
    env.pop("MODELCYCLE_SERVER_TOKEN", None)
    out = subprocess.run([sys.executable, "-m", "modelcycle", "server", "--host", "0.0.0.0", "--port", "1"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "MODELCYCLE_SERVER_TOKEN" in out.stderr and "Traceback" not in out.stderr
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _serve(tmp_path / "server", port, MODELCYCLE_SERVER_TOKEN="tok")
    try:
        c = _client(f"http://127.0.0.1:{port}", tmp_path / "laptop", "tok")
        c.store.get_or_create_experiment("e")
        assert [e.name for e in c.list_experiments()] == ["e"]
    finally:
        _stop(proc)
    assert proc.returncode is not None


def test_calls_with_keyword_fields_travel_whole(tmp_path: Path) -> None:
    """The agent's cycle calls take ``**fields``: through the server they arrive as the same keywords."""
    import time

    from modelcycle.entities import Cycle, CycleState
    from modelcycle.errors import InvalidInputError
    from modelcycle.server.app import create_app
    from modelcycle.store.metadata.http import HttpMetadataStore

    with running(create_app(Settings.for_home(tmp_path / "server", capture=False))) as url:
        store = HttpMetadataStore(url)
        now = time.time()
        assert store.cycle_claim_new(Cycle(id="c1", project="p", trigger="manual", trigger_key="k", owner="me",
                                           state=CycleState.TRAINING, started_at=now, updated_at=now))
        assert store.cycle_update("c1", owner="me", state=CycleState.VALIDATING.value, updated_at=now + 1)
        assert [c.id for c in store.cycle_list("p", state=CycleState.VALIDATING.value)] == ["c1"]
        assert store.cycle_list("p", state=CycleState.TRAINING.value) == []
        with pytest.raises(InvalidInputError, match="unknown cycle fields"):
            store.cycle_update("c1", colour="red")
        with pytest.raises(InvalidInputError, match="cannot be listed by"):
            store.cycle_list("p", colour="red")


def _serve(home: Path, port: int, **more: str) -> subprocess.Popen:
    """``modelcycle server`` on ``port`` over ``home``, once it answers."""
    env = {**os.environ, "MODELCYCLE_HOME": str(home)}
    for k in ("MODELCYCLE_SERVER_TOKEN", "MODELCYCLE_TRACKING_URI", "MODELCYCLE_STORE_URI", "MODELCYCLE_ARTIFACT_URI"):
        env.pop(k, None)
    env.update(more)
    proc = subprocess.Popen([sys.executable, "-m", "modelcycle", "server", "--port", str(port), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # printed once the server answers
    assert f"127.0.0.1:{port}" in line, proc.stderr.read() if proc.poll() is not None else line
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=60)


def test_a_server_that_is_down_for_a_while_loses_nothing_logged_meanwhile(tmp_path: Path) -> None:
    """Logging goes on while the server restarts: values wait in the client's buffer (bounded; past the bound the
    logging call itself waits for the server, then raises) and reach the server once it answers again."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp_path / "server"
    proc = _serve(home, port)
    try:
        c = _client(f"http://127.0.0.1:{port}", tmp_path / "laptop", None)
        run = c.start_run(experiment="outage")
        for i in range(100):
            run.log_metric("loss", i, step=i)
        c.flush()
        _stop(proc)
        for i in range(100, 600):  # the server is down: nothing raises, nothing is dropped
            run.log_metric("loss", i, step=i)
        run.log_param("phase", "during the outage")
        proc = _serve(home, port)
        run.end()
        c.flush()
        assert [p.step for p in c.store.get_metric_history(run.id, "loss")] == list(range(600))
        assert c.get_run(run.id).params == {"phase": "during the outage"}
        c.close()
    finally:
        _stop(proc)


def test_a_server_out_of_reach_for_longer_than_the_busy_timeout_is_one_error_naming_it() -> None:
    import socket

    from modelcycle.errors import StoreError
    from modelcycle.store.metadata.http import HttpMetadataStore

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    store = HttpMetadataStore(f"http://127.0.0.1:{port}", busy_timeout=0.5)
    with pytest.raises(StoreError, match=f"cannot reach the modelcycle server at http://127.0.0.1:{port}"):
        store.list_experiments()


def test_values_logged_while_the_server_is_out_of_reach_are_bounded_and_kept(tmp_path: Path) -> None:
    """Past the buffer's bound, a log call waits for the server and raises one error saying so; what was logged stays
    and reaches the server once it answers."""
    import socket

    from modelcycle.errors import StoreError
    from modelcycle.store.metadata.base import NewRun
    from modelcycle.store.metadata.http import HttpMetadataStore
    from modelcycle.tracking.buffer import LogBuffer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    buffer = LogBuffer(HttpMetadataStore(f"http://127.0.0.1:{port}", busy_timeout=0.5), 3600.0, 3600.0, list, max_pending=1000)
    run_id = "a" * 32
    buffer.runs.append(NewRun(id=run_id, experiment_id=1, name="r", start_time=time.time()))
    for step in range(999):
        buffer.add_metric((run_id, "loss", float(step), step, time.time()))
    with pytest.raises(StoreError, match=r"1,000 logged values are waiting .* cannot reach the modelcycle server") as raised:
        buffer.add_metric((run_id, "loss", 999.0, 999, time.time()))
    assert "Traceback" not in str(raised.value)
    with pytest.raises(StoreError, match="waiting to be written"):  # the next call past the bound: the same error
        buffer.add_metric((run_id, "loss", 1000.0, 1000, time.time()))
    assert buffer.pending() == 1002  # the run and every point: nothing dropped
    proc = _serve(tmp_path / "server", port)
    try:
        buffer.store = HttpMetadataStore(f"http://127.0.0.1:{port}")
        buffer.store.get_or_create_experiment("Default")
        buffer.flush()
        assert len(buffer.store.get_metric_history(run_id, "loss")) == 1001
    finally:
        _stop(proc)


@pytest.mark.parametrize("where", ["sqlite", "server"])
def test_values_of_a_run_deleted_meanwhile_are_dropped_with_a_warning_and_block_nothing(
        tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture) -> None:
    """Someone deletes a run while a process still logs to it: the store refuses those values for good. They are
    dropped with one warning and one error, the other run's values of the same batch are written, and later values
    flow; a store out of reach is not taken for a refusal (see the test above: nothing is dropped then)."""
    import contextlib

    from modelcycle.errors import StoreRefusedError
    from modelcycle.server.app import create_app
    from modelcycle.store import open_metadata_store
    from modelcycle.store.metadata.base import NewRun
    from modelcycle.tracking.buffer import LogBuffer

    settings = Settings.for_home(tmp_path / "server", capture=False)
    with (running(create_app(settings)) if where == "server" else contextlib.nullcontext(settings.store_uri)) as uri:
        store = open_metadata_store(uri)
        other = open_metadata_store(uri)  # someone else's process
        exp = store.get_or_create_experiment("churn").id
        buffer = LogBuffer(store, 3600.0, 3600.0, list)
        gone, kept = "a" * 32, "b" * 32
        for run_id in (gone, kept):
            buffer.runs.append(NewRun(id=run_id, experiment_id=exp, name=run_id[:1], start_time=time.time()))
        buffer.flush()
        other.delete_run(gone)
        for step in range(5):
            buffer.add_metric((gone, "loss", float(step), step, time.time()))
            buffer.add_metric((kept, "loss", float(step), step, time.time()))
        buffer.params.append((gone, "C", "1"))
        with pytest.raises(StoreRefusedError):
            buffer.flush()
        assert buffer.pending() == 0 and buffer.dropped == 6
        said = [r.getMessage() for r in caplog.records if "stops writing run" in r.getMessage()]
        assert len(said) == 1 and gone in said[0] and "deleted meanwhile" in said[0] and "6 value(s)" in said[0], said
        assert [m.value for m in store.get_metric_history(kept, "loss")] == [0.0, 1.0, 2.0, 3.0, 4.0]
        for step in range(5, 8):  # later values of the deleted run are dropped without another word or request
            buffer.add_metric((gone, "loss", float(step), step, time.time()))
        buffer.add_metric((kept, "loss", 5.0, 5, time.time()))
        buffer.flush()  # nothing waits behind the refused values
        assert len(store.get_metric_history(kept, "loss")) == 6 and buffer.dropped == 9
        assert len([r for r in caplog.records if "stops writing run" in r.getMessage()]) == 1
        store.close()
        other.close()


def test_a_server_killed_mid_upload_leaves_no_process_and_its_next_start_clears_the_spool(tmp_path: Path) -> None:
    """SIGKILL while a log file is being received, after one was checked: the checking process ends with the server,
    and the server started again removes the half-received file (its process is gone)."""
    import socket

    import psutil

    from modelcycle.store.predictions import parquet_bytes
    from tests.server.test_logs import _rows
    from tests.serving.test_server_process import free_port

    port = free_port()
    home = tmp_path / "server"
    proc = _serve(home, port)
    try:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        route = f"/api/v1/logs/predictions/model=churn/date={day}"
        body = parquet_bytes(_rows("churn", 3, time.time()))
        put = urllib.request.Request(f"http://127.0.0.1:{port}{route}/part-1-w_a.parquet", data=body, method="PUT")
        assert urllib.request.urlopen(put, timeout=120).status == 201
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "a checking process"
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow.sendall((f"PUT {route}/part-2-w_a.parquet HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n").encode()
                     + body[:100])
        spool = home / "server-uploads"
        deadline = time.monotonic() + 60
        while not list(spool.glob(".log-*")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=60)
        slow.close()
        _, alive = psutil.wait_procs(children, timeout=60)
        assert not alive, [p.pid for p in alive]
    finally:
        if proc.poll() is None:
            _stop(proc)
    assert list(spool.glob(".log-*"))
    proc = _serve(home, port)
    _stop(proc)
    assert not list(spool.glob(".log-*"))


def _post(url: str, path: str, body: dict, token: str) -> tuple[int, Any, dict]:
    request = urllib.request.Request(url + path, method="POST", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def test_one_users_searches_past_the_limit_are_answered_429_and_the_client_waits_its_turn(tmp_path: Path) -> None:
    """A user with four searches in flight gets 429 (with Retry-After) for a fifth at once, without a thread of the
    server waiting for it; the Python client asks again after the wait, and gets its answer once one has finished."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from modelcycle.server.app import create_app

    app = create_app(Settings.for_home(tmp_path / "server", capture=False), token="s3cret")
    assert app.state.store.search_timeout == 30  # and each is stopped after 30 s (the store's budget, tested with it)
    with running(app) as url:
        alice = _client(url, tmp_path / "alice", "s3cret")
        with alice.start_run(experiment="churn") as run:
            run.log_metrics({"auc": 0.9})
        alice.flush()
        remote = alice.store  # the client's calls to the server (a client's search also marks silent runs LOST first)
        held = app.state.store._io  # every statement of the server's store waits behind it, as behind long searches
        held.acquire()
        try:
            pool = ThreadPoolExecutor(10)
            body = {"experiments": ["churn"], "filter": "metrics.auc > 0.5"}
            sent = [pool.submit(_post, url, "/api/v1/store/search_page", body, "s3cret") for _ in range(8)]
            deadline = time.monotonic() + 60
            while sum(f.done() for f in sent) < 4:  # four are answered at once; four are in flight
                assert time.monotonic() < deadline, "no search was refused"
                threading.Event().wait(0.05)
            for status, headers, answer in (f.result() for f in sent if f.done()):
                assert status == 429 and headers.get("Retry-After") == "1"
                assert "the server's token already has 4 searches running" in answer["error"]["message"]
            refused = app.state.searches.refused
            waiting = pool.submit(remote.search_runs, ["churn"], "metrics.auc > 0.5")
            while app.state.searches.refused == refused:  # the client was answered 429 at least once ...
                assert time.monotonic() < deadline and not waiting.done(), "the client's search was neither refused nor kept waiting"
                threading.Event().wait(0.05)
        finally:
            held.release()
        assert [r.id for r in waiting.result(timeout=120)] == [run.id]  # ... and asked again, answered once there was room
        assert sorted(f.result(timeout=120)[0] for f in sent) == [200] * 4 + [429] * 4
        pool.shutdown()
        alice.close()


def test_searches_are_counted_per_user_and_the_server_token_apart_from_a_user_named_admin() -> None:
    from contextlib import ExitStack

    from modelcycle.server.access import Principal
    from modelcycle.server.app import _SERVER_TOKEN, _Searches

    searches = _Searches()
    with ExitStack() as running_now:
        assert all(running_now.enter_context(searches.one(_SERVER_TOKEN)) for _ in range(4))
        with searches.one(_SERVER_TOKEN) as fifth:
            assert not fifth
        for other in (Principal("admin"), Principal("ana"), None):
            with searches.one(other) as admitted:
                assert admitted
    with searches.one(_SERVER_TOKEN) as again:  # the slots are given back
        assert again
