"""A real `modelcycle serve` process against hostile clients: slow bodies, wide records (its memory measured),
foreign Host headers, and an alias moved to a version that would run code."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from modelcycle.registry import Registry
from tests.security import hostile
from tests.serving.test_server_process import frame, start

GOOD = {"records": [{"a": 0.5, "b": -0.2}]}


@pytest.fixture
def home(tmp_path: Path):
    from sklearn.linear_model import LogisticRegression

    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client

    home = tmp_path / "home"
    client = Client(Settings.for_home(home, capture=False))
    registry = Registry(client)
    X, y = frame(200)
    with client.start_run(experiment="serving"):
        logged = client.log_model(LogisticRegression().fit(X, y), reference_data=X)
    registry.register_model(logged, "churn")
    registry.set_alias("churn", "champion", 1)
    client.flush()
    yield {"home": home, "client": client, "registry": registry, "tmp": tmp_path}
    client.close()


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except Exception:
        proc.kill()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def raw_request(port: int, host: str, body: bytes = json.dumps(GOOD).encode(), content_type: str = "application/json") -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                  "Connection: close\r\n\r\n".encode() + body)
        reply = b""
        while b"\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.mark.slow
def test_slow_bodies_do_not_starve_other_clients(home: dict) -> None:
    """64 connections trickle their bodies a byte at a time: nobody else waits for them, and each gets 408."""
    proc, url = start(home["home"], "--body-timeout", "4", "--max-queue", "8")
    port = int(url.rsplit(":", 1)[1])
    slow: list[socket.socket] = []
    statuses: dict[int, bytes] = {}
    done = threading.Event()

    def trickle(i: int, s: socket.socket) -> None:
        try:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
            while not done.is_set():
                s.sendall(b" ")
                s.settimeout(0.25)
                try:
                    reply = s.recv(4096)
                    statuses[i] = reply
                    return
                except TimeoutError:
                    continue
        except OSError as e:
            statuses[i] = repr(e).encode()

    try:
        for i in range(64):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            slow.append(s)
            threading.Thread(target=trickle, args=(i, s), daemon=True).start()
        answers = []
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(20):
                t0 = time.monotonic()
                answers.append((http.post("/predict", json=GOOD).status_code, time.monotonic() - t0))
        assert [a[0] for a in answers] == [200] * 20, answers
        deadline = time.monotonic() + 60
        while len(statuses) < 64 and time.monotonic() < deadline:
            time.sleep(0.2)
        done.set()
        assert len(statuses) == 64, f"only {len(statuses)} slow clients were answered"
        assert all(reply.startswith(b"HTTP/1.1 408") for reply in statuses.values()), set(r[:20] for r in statuses.values())
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/predict", json=GOOD).status_code == 200
    finally:
        done.set()
        for s in slow:
            s.close()
        stop(proc)


@pytest.mark.slow
def test_wide_records_keep_the_server_small(home: dict) -> None:
    """10,000 rows, each with a different extra key (a 0.5 MB body), three times: the server's memory barely moves."""
    proc, url = start(home["home"])
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.post("/predict", json=GOOD).status_code == 200
            before = rss_mb(proc.pid)
            body = json.dumps({"records": [{"a": 0.1, "b": 0.2, f"extra_{i}": i} for i in range(10_000)]}).encode()
            for _ in range(3):
                answer = http.post("/predict", content=body, headers={"Content-Type": "application/json"})
                assert answer.status_code == 200 and "9990 more" in answer.headers["x-modelcycle-warning"]
            grown = rss_mb(proc.pid) - before
            t0 = time.monotonic()
            assert http.post("/predict", json=GOOD).status_code == 200
            assert time.monotonic() - t0 < 10
        assert grown < 250, f"the server grew by {grown:.0f} MB"
    finally:
        stop(proc)


def test_host_headers_on_a_real_server(home: dict) -> None:
    proc, url = start(home["home"])
    port = int(url.rsplit(":", 1)[1])
    try:
        assert raw_request(port, "evil.example") == 400
        assert raw_request(port, f"rebound.example:{port}") == 400
        assert raw_request(port, f"localhost:{port}") == 200
        assert raw_request(port, f"127.0.0.1:{port}", content_type="text/plain") == 415
    finally:
        stop(proc)
    proc, url = start(home["home"], "--allowed-hosts", "models.example.com")
    port = int(url.rsplit(":", 1)[1])
    try:
        assert raw_request(port, "models.example.com") == 200
        assert raw_request(port, "evil.example") == 400
    finally:
        stop(proc)


def test_an_alias_moved_to_a_version_that_runs_code_is_never_loaded(home: dict) -> None:
    """A version registered by someone who wrote its files (and so its recorded hash): the server refuses it by type
    name, keeps answering with the version it had, and the code never runs. The same for a version holding a float."""
    import skops.io as sio

    tmp = home["tmp"]
    marker = tmp / "canary"
    script = tmp / "script.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    client, registry = home["client"], home["registry"]
    evil = hostile.hostile_package(tmp, hostile.payloads(marker, script)["cProfile.run"], name="evil")
    floaty, _ = hostile.logistic(tmp, "floaty")
    sio.dump(3.5, floaty / "model.skops")
    hostile.rehash(floaty)
    for folder in (evil, floaty):  # versions 2 and 3
        with client.start_run(experiment="serving") as run:
            run.log_artifact(folder, "model")
        registry.register_model(f"runs:/{run.id}/model", "churn")
    client.flush()
    proc, url = start(home["home"])
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            for version, words in ((2, "cProfile.run"), (3, "has no predict")):
                registry.set_alias("churn", "champion", version)
                deadline = time.monotonic() + 60
                while True:
                    served = http.get("/version").json()["model"]
                    if served["failed_swaps"] >= version - 1:
                        break
                    assert time.monotonic() < deadline, "the server never tried the new version"
                    time.sleep(0.1)
                assert words in served["last_error"] and served["version"] == 1
                answer = http.post("/predict", json=GOOD)
                assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
    finally:
        stop(proc)
    assert not marker.exists()


def test_a_type_is_trusted_on_purpose_with_MODELCYCLE_TRUSTED_TYPES(home: dict) -> None:
    """A model with a transformer of the user's own: the server refuses to start until the type is named."""
    import os
    import subprocess
    import sys

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from tests.security.test_packages import double

    X, y = frame(200)
    name = "tests.security.test_packages.double"
    model = make_pipeline(FunctionTransformer(func=double), LogisticRegression()).fit(X, y)
    client, registry = home["client"], home["registry"]
    with client.start_run(experiment="serving"):
        logged = client.log_model(model, reference_data=X, trusted_types=[name])
    registry.register_model(logged, "custom")
    client.flush()
    env = {**os.environ, "MODELCYCLE_HOME": str(home["home"]), "MODELCYCLE_CAPTURE": "0"}
    refused = subprocess.run([sys.executable, "-m", "modelcycle", "serve", "models:/custom/1", "--port", "1"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "MODELCYCLE_TRUSTED_TYPES" in refused.stderr and name in refused.stderr
    assert len([line for line in refused.stderr.splitlines() if line.strip()]) == 1, refused.stderr
    proc, url = start(home["home"], env={"MODELCYCLE_TRUSTED_TYPES": name}, model="models:/custom/1")
    try:
        answer = httpx.post(url + "/predict", json=GOOD, timeout=30)
        assert answer.status_code == 200 and answer.json()["predictions"] == model.predict(pd.DataFrame(GOOD["records"])).tolist()
    finally:
        stop(proc)
