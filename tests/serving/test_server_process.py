"""A real `modelcycle serve` process on 127.0.0.1: load while the alias moves, overload, SIGTERM, refusals; batch scoring."""

from __future__ import annotations

import concurrent.futures as cf
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelcycle.registry import Registry
from modelcycle.settings import Settings
from modelcycle.store.predictions import read_log
from modelcycle.tracking.client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return X, pd.Series((X["a"] > 0).astype(int))


@pytest.fixture
def home(tmp_path: Path):
    home = tmp_path / "home"
    client = Client(Settings.for_home(home, capture=False))
    registry = Registry(client)
    X, y = frame(200)
    for C in (1.0, 0.1, 0.01):
        with client.start_run(experiment="serving"):
            logged = client.log_model(make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(X, y), reference_data=X)
        registry.register_model(logged, "churn")
    registry.set_alias("churn", "champion", 1)
    client.flush()
    yield {"home": home, "client": client, "registry": registry}
    client.close()


def start(home: Path, *extra: str, env: dict | None = None, model: str = "models:/churn@champion") -> tuple[subprocess.Popen, str]:
    port = free_port()
    environment = {**os.environ, "MODELCYCLE_HOME": str(home), "MODELCYCLE_CAPTURE": "0", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "modelcycle", "serve", model, "--port", str(port), "--poll", "0.1",
                             *extra], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180  # several workers each import and load the model: slow on a busy machine
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not become ready")


RECORD = {"records": [{"a": 0.5, "b": -0.2}]}


class Clients:
    """``n`` threads posting RECORD until stopped (or the server goes away), each answer 200 kept with its time."""

    def __init__(self, url: str, n: int, prefix: str):
        self.url, self.prefix = url, prefix
        self.answered: list[tuple[str, float]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(i,)) for i in range(n)]
        for t in self.threads:
            t.start()

    def _loop(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            n = 0
            while not self.stop.is_set():
                try:
                    r = http.post("/predict", json=RECORD, headers={"X-Request-ID": f"{self.prefix}{i}-{n}"})
                except httpx.HTTPError:
                    return
                n += 1
                if r.status_code == 200:
                    self.answered.append((r.headers["x-request-id"], time.monotonic()))

    def join(self) -> list[tuple[str, float]]:
        self.stop.set()
        for t in self.threads:
            t.join()
        return self.answered


def damage(home: dict, version: int) -> None:
    """Change the last bytes of a registered version's model file in the artifact store."""
    run = home["client"].get_run(home["registry"].get_model_version("churn", version).run_id)
    digest = next(a.digest for a in run.artifacts if a.path == "model/model.skops")
    blob = next(Path(home["client"].settings.artifact_uri).rglob(digest))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-4] + b"XXXX")


@pytest.mark.slow
def test_64_clients_for_60_s_while_the_alias_moves_10_times(home: dict) -> None:
    """The issue's reliability test at full scale: 10 s of steady state, then 10 alias moves over 50 s, two of
    them to versions whose files were damaged. No request fails, the damaged versions never answer, every
    answer names a version the alias pointed to, and the p99 latency stays within 2x of the steady state's.

    "Steady" is every request sent away from a move (in the first 10 s, and more than 2 s after the last
    move), "swapping" every request sent in the 2 s after a move: both are spread over the same minute,
    so whatever else the machine does weighs on both alike."""
    registry = home["registry"]
    X, y = frame(200)
    for C in (0.5, 0.05):  # versions 4 and 5
        with home["client"].start_run(experiment="serving"):
            logged = home["client"].log_model(make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(X, y), reference_data=X)
        registry.register_model(logged, "churn")
    damage(home, 3)
    damage(home, 5)
    proc, url = start(home["home"])
    answers: list[tuple[float, float, int, str]] = []  # (sent at, seconds, status, version header)
    stop = threading.Event()

    def one_client() -> None:  # http.client: a light client, so the server is measured and not the load generator
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
        body, headers = json.dumps(RECORD), {"Content-Type": "application/json"}
        while not stop.is_set():
            sent = time.monotonic()
            try:
                conn.request("POST", "/predict", body, headers)
                r = conn.getresponse()
                r.read()
                answers.append((sent, time.monotonic() - sent, r.status, r.getheader("x-model-version", "")))
            except (OSError, http.client.HTTPException) as e:
                answers.append((sent, time.monotonic() - sent, 0, type(e).__name__))
                conn.close()
        conn.close()

    def served() -> dict:
        return httpx.get(url + "/version", timeout=30).json()["model"]

    def wait_for(check, what: str) -> None:
        deadline = time.time() + 30
        while not check(served()):
            assert time.time() < deadline, f"the server never {what}"
            time.sleep(0.05)

    clients = [threading.Thread(target=one_client) for _ in range(64)]
    allowed = {"1"}
    try:
        began = time.monotonic()
        for t in clients:
            t.start()
        time.sleep(10)
        moves_began = time.monotonic()
        moved_at: list[float] = []
        for i, target in enumerate((2, 3, 1, 4, 2, 5, 1, 4, 2, 1)):
            moved_at.append(time.monotonic())
            registry.set_alias("churn", "champion", target)
            if target in (3, 5):
                failures = served()["failed_swaps"]
                wait_for(lambda m, f=failures: m["failed_swaps"] > f or (m["failed_swaps"] >= 1 and f >= 1), "noticed the damaged version")
            else:
                allowed.add(str(target))
                wait_for(lambda m, t=target: m["version"] == t, f"swapped to version {target}")
            time.sleep(max(0.0, moves_began + 5 * (i + 1) - time.monotonic()))
        stop.set()
        for t in clients:
            t.join(timeout=60)
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert time.monotonic() - began >= 60 and moves_began - began >= 10
    failed = [a for a in answers if a[2] != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    versions = {a[3] for a in answers}
    assert "3" not in versions and "5" not in versions, "a damaged version answered"
    assert versions <= allowed and len(versions) >= 3, versions

    def p99(rows: list) -> float:
        return float(np.percentile([a[1] for a in rows], 99))

    def swapping(sent: float) -> bool:
        return any(m <= sent < m + 2 for m in moved_at)

    steady = [a for a in answers if a[0] >= began + 2 and not swapping(a[0])]  # the first 2 s warm the clients up
    moving = [a for a in answers if swapping(a[0])]
    print(f"{len(answers)} answers; p99 steady {p99(steady) * 1000:.0f} ms, while swapping {p99(moving) * 1000:.0f} ms")
    assert len(steady) > 1000 and len(moving) > 500
    assert p99(moving) <= 2 * p99(steady), f"p99 {p99(moving) * 1000:.0f} ms while swapping vs {p99(steady) * 1000:.0f} ms steady"


@pytest.mark.slow
def test_sigterm_drains_and_every_answer_is_logged(home: dict) -> None:
    proc, url = start(home["home"])
    clients = Clients(url, 8, "c")
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    answered = [rid for rid, _ in clients.join()]
    logged = read_log(home["home"] / "artifacts", "churn")
    assert len(answered) > 20
    assert set(answered) <= set(logged["request_id"]), "every request answered 200 is in the prediction log"
    assert not logged.duplicated(["request_id", "row"]).any()


@pytest.mark.slow
def test_overload_gets_503_not_500_and_service_recovers(home: dict) -> None:
    proc, url = start(home["home"], "--max-queue", "2")
    codes: list[int] = []
    body = {"records": frame(20000)[0].to_dict("records")}  # slow enough to queue up

    def one() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            r = http.post("/predict", json=body)
            codes.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1" and "busy" in r.json()["error"]["message"]

    with cf.ThreadPoolExecutor(12) as pool:
        list(pool.map(lambda _: one(), range(12)))
    assert 503 in codes and 200 in codes and 500 not in codes
    time.sleep(0.5)
    assert httpx.post(url + "/predict", json=RECORD).status_code == 200
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def test_refuses_a_network_address_without_a_token(home: dict) -> None:
    env = {**os.environ, "MODELCYCLE_HOME": str(home["home"]), "MODELCYCLE_CAPTURE": "0"}
    env.pop("MODELCYCLE_SERVE_TOKEN", None)
    out = subprocess.run([sys.executable, "-m", "modelcycle", "serve", "models:/churn@champion", "--host", "0.0.0.0"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "MODELCYCLE_SERVE_TOKEN" in out.stderr and "--no-auth" in out.stderr


def test_serve_name_at_alias_prints_one_json_line_once_it_answers(home: dict) -> None:
    """`modelcycle serve churn@champion --json`: the form `models show` uses, and a line a script can wait for."""
    import select

    port = free_port()
    env = {**os.environ, "MODELCYCLE_HOME": str(home["home"]), "MODELCYCLE_CAPTURE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "modelcycle", "serve", "churn@champion", "--port", str(port), "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        readable, _, _ = select.select([proc.stdout], [], [], 180)  # several imports and a model load on a busy machine
        assert readable, "no line within 3 minutes"
        ready = json.loads(proc.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        assert ready == {"url": url, "model": "churn@champion", "version": 1, "pid": proc.pid, "workers": 1}
        answer = httpx.post(url + "/predict", json=RECORD, timeout=30)
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.stdout.read() == "", "stdout carries the one line only"


def test_it_says_where_it_listens_once_it_answers(home: dict) -> None:
    import select

    proc, url = start(home["home"], model="churn@champion")
    try:
        readable, _, _ = select.select([proc.stderr], [], [], 60)  # the line comes within moments of the first answer
        assert readable, "nothing was announced"
        assert proc.stderr.readline().startswith(f"serving churn@champion on {url} (1 worker)")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_a_busy_port_is_one_line_and_nothing_is_announced(home: dict) -> None:
    env = {**os.environ, "MODELCYCLE_HOME": str(home["home"]), "MODELCYCLE_CAPTURE": "0"}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "modelcycle", "serve", "churn@champion", "--port", str(port)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr == f"error: port {port} on 127.0.0.1 is in use; pass --port with a free one\n", out.stderr
    assert out.stdout == ""


def test_batch_scoring_a_file(home: dict, tmp_path: Path) -> None:
    X, _ = frame(2500, seed=3)
    X.to_parquet(tmp_path / "in.parquet")
    env = {**os.environ, "MODELCYCLE_HOME": str(home["home"]), "MODELCYCLE_CAPTURE": "0"}
    out = subprocess.run([sys.executable, "-m", "modelcycle", "predict", "models:/churn@champion", str(tmp_path / "in.parquet"),
                          "-o", str(tmp_path / "scored.parquet"), "--chunk-rows", "1000"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert len(scored) == 2500 and {"a", "b", "prediction", "proba.0", "proba.1"} <= set(scored.columns)
    again = subprocess.run([sys.executable, "-m", "modelcycle", "predict", "churn/1", str(tmp_path / "in.parquet"),
                            "-o", str(tmp_path / "again.parquet"), "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["name"], summary["version"], summary["rows"], summary["output"]) == ("churn", 1, 2500, str(tmp_path / "again.parquet"))
    assert summary["sha256"] == home["registry"].get_model_version("churn", 1).hash
    X.drop(columns=["b"]).to_parquet(tmp_path / "bad.parquet")
    bad = subprocess.run([sys.executable, "-m", "modelcycle", "predict", "models:/churn@champion", str(tmp_path / "bad.parquet"),
                          "-o", str(tmp_path / "never.parquet")], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "missing columns: b" in bad.stderr and not (tmp_path / "never.parquet").exists()


@pytest.mark.slow
def test_kill_9_loses_at_most_the_last_second_and_tears_no_file(home: dict) -> None:
    proc, url = start(home["home"])
    clients = Clients(url, 8, "k")
    time.sleep(3.0)
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    answered = clients.join()
    files = list((home["home"] / "artifacts" / "predictions").rglob("part-*.parquet"))  # published files; a .tmp one may remain, never read
    assert files, "the log wrote files before the kill"
    for f in files:
        pd.read_parquet(f)  # every published file is whole
    logged = read_log(home["home"] / "artifacts", "churn")
    assert not logged.duplicated(["request_id", "row"]).any()
    missing = [(rid, at) for rid, at in answered if rid not in set(logged["request_id"])]
    assert all(killed_at - at <= 2.5 for _, at in missing), "only the last second or so of answers may be missing"
    assert len(logged) >= len(answered) - len(missing) and len(answered) > 20


@pytest.mark.slow
def test_batch_scoring_on_dask_matches_local(home: dict, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    X, _ = frame(3000, seed=4)
    X.to_parquet(tmp_path / "in.parquet")
    env = {**os.environ, "MODELCYCLE_HOME": str(home["home"]), "MODELCYCLE_CAPTURE": "0"}
    for name, extra in (("local", []), ("dask", ["--executor", "dask"])):
        out = subprocess.run([sys.executable, "-m", "modelcycle", "predict", "models:/churn@champion", str(tmp_path / "in.parquet"),
                              "-o", str(tmp_path / f"{name}.parquet"), "--chunk-rows", "700", *extra], env=env, capture_output=True,
                             text=True, timeout=240)
        assert out.returncode == 0, out.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "dask.parquet"))


@pytest.mark.slow
def test_several_workers_serve_and_log(home: dict) -> None:
    proc, url = start(home["home"], "--workers", "2")
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            ids = []
            for i in range(40):
                r = http.post("/predict", json=RECORD, headers={"X-Request-ID": f"w{i}"})
                assert r.status_code == 200 and r.headers["x-model-version"] == "1"
                ids.append(r.headers["x-request-id"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    logged = read_log(home["home"] / "artifacts", "churn")
    assert set(ids) <= set(logged["request_id"]) and not logged.duplicated(["request_id", "row"]).any()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_four_times_capacity_sheds_load_with_bounded_memory_and_recovers(home: dict) -> None:
    proc, url = start(home["home"], "--max-queue", "8")
    codes: list[int] = []
    stop = threading.Event()
    with httpx.Client(base_url=url, timeout=10) as http:  # warm, then the memory baseline
        for _ in range(50):
            http.post("/predict", json=RECORD)
    baseline = _rss_mb(proc.pid)

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                codes.append(http.post("/predict", json=RECORD).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(32)]  # 32 clients against a queue of 8
    for t in threads:
        t.start()
    time.sleep(6)
    peak = _rss_mb(proc.pid)
    stop.set()
    for t in threads:
        t.join()
    stopped = time.monotonic()
    recovered = None
    with httpx.Client(base_url=url, timeout=10) as http:
        while time.monotonic() - stopped < 10:
            if http.post("/predict", json=RECORD).status_code == 200:
                recovered = time.monotonic() - stopped
                break
            time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert 503 in codes and 200 in codes and 500 not in codes, sorted(set(codes))
    assert peak < baseline + 200, f"memory grew from {baseline:.0f} MB to {peak:.0f} MB under overload"
    assert recovered is not None, "normal service did not return within 10 s"
