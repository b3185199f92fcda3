"""modelcycle on a real S3-compatible server: what each artifact costs in requests, and the prediction log
and labels kept in the object store so every "machine" with the URIs sees one log."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.settings import Settings
from modelcycle.tracking.client import Client


class Requests:
    """Every request an s3fs filesystem sends, counted on the way out (botocore's before-send event)."""

    def __init__(self, fs) -> None:
        from fsspec.asyn import sync

        sync(fs.loop, fs.set_session)
        self.fs, self.calls = fs, []
        fs.s3.meta.events.register("before-send.s3", self._seen)

    def _seen(self, request, **_) -> None:
        self.calls.append(f"{request.method} {request.url.split('?')[0].rsplit('/', 2)[-2:]}")

    def take(self) -> list[str]:
        out, self.calls = self.calls, []
        return out

    def close(self) -> None:
        self.fs.s3.meta.events.unregister("before-send.s3", self._seen)


@pytest.fixture
def team(s3_bucket: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings of one machine of a team: its own home, the shared bucket for artifacts and the log."""
    yield Settings.for_home(tmp_path / "laptop", capture=False).replace(artifact_uri=f"s3://{s3_bucket}/artifacts")


@pytest.fixture
def requests(team: Settings) -> Iterator[Requests]:
    from modelcycle.store import open_artifact_store

    counter = Requests(open_artifact_store(team.artifact_uri).fs)
    yield counter
    counter.close()


def test_a_new_small_artifact_costs_at_most_three_requests(team: Settings, requests: Requests, tmp_path: Path) -> None:
    client = Client(team)
    f = tmp_path / "notes.txt"
    f.write_text("first")
    with client.start_run(experiment="s3") as run:
        requests.take()
        run.log_artifact(f)
        calls = requests.take()
    assert len(calls) == 1 and calls[0].startswith("PUT"), calls  # the README: a small artifact is one request
    assert client.read_artifact(run.id, "notes.txt") == b"first"
    client.close()


def test_log_model_of_five_files_costs_at_most_ten_requests(team: Settings, requests: Requests) -> None:
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    client = Client(team)
    with client.start_run(experiment="s3") as run:
        requests.take()
        logged = client.log_model(model, reference_data=X)
    calls = requests.take()
    files = [a for a in client.get_run(run.id).artifacts if a.path.startswith("model/")]
    assert len(calls) <= 2 * len(files) and (len(files) > 5 or len(calls) <= 10), (len(files), calls)
    from modelcycle.registry import Registry

    requests.take()
    loaded = Registry(client).load_model(logged)
    assert (loaded.predict(X) == model.predict(X)).all()
    assert len(requests.take()) <= 2 * len(files), "each file of the package is read in one request"
    client.close()


def test_a_changed_blob_on_the_object_store_is_refused(team: Settings, s3_bucket: str) -> None:
    import boto3

    from modelcycle.errors import ArtifactCorruptedError
    from modelcycle.store import open_artifact_store
    from tests.conftest import _boto_credentials

    store = open_artifact_store(team.artifact_uri)
    digest, _ = store.put_bytes(b"weights")
    import os

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], **_boto_credentials())
    s3.put_object(Bucket=s3_bucket, Key=f"artifacts/{digest[:2]}/{digest}", Body=b"evil weights")
    with pytest.raises(ArtifactCorruptedError, match="corrupted"):
        store.get_bytes(digest)


def _frame(ids: list[str], at: float) -> pd.DataFrame:
    return pd.DataFrame({"request_id": ids, "row": 0, "time": pd.to_datetime([at] * len(ids), unit="s", utc=True),
                         "model": "churn", "version": 1, "role": "champion", "latency_ms": 1.0,
                         "input.a": np.arange(len(ids), dtype=float), "prediction": 1})


def test_two_replicas_log_to_the_bucket_and_any_machine_reads_and_labels_every_row(team: Settings, tmp_path: Path) -> None:
    from modelcycle.serving.predlog import PredictionLog
    from modelcycle.store.predictions import append_labels, list_files, read_labels, read_log

    now = time.time()
    replicas = [PredictionLog(team.log_uri, spool=tmp_path / f"replica{i}" / "spool", flush_interval=0.05) for i in range(2)]
    for i, log in enumerate(replicas):
        log.add(_frame([f"r{i}-{k}" for k in range(30)], now - 1))
        log.flush()
    files = list_files(team.log_uri, "predictions", "churn")
    assert {f.writer for f in files} == {r.writer for r in replicas}, "each replica writes under its own name"
    laptop = Settings.for_home(tmp_path / "other-laptop", capture=False).replace(artifact_uri=team.artifact_uri)
    logged = read_log(laptop.log_uri, "churn")
    assert len(logged) == 60 and logged["request_id"].is_unique
    # a label for a request the other replica answered, sent from the laptop: accepted
    assert append_labels(laptop.log_uri, "churn", ["r1-0", "r0-5"], [1, 0]) == 2
    assert sorted(read_labels(team.log_uri, "churn")["request_id"]) == ["r0-5", "r1-0"]
    for log in replicas:
        log.close()
    left = [p for i in range(2) for p in (tmp_path / f"replica{i}" / "spool").rglob("*.parquet")]
    assert not left, "the spools were shipped"


class _Gate:
    """A TCP forwarder in front of the S3 server that can be closed and opened: the store "unreachable"."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.open = True
        self.hang = False
        self.held: list[socket.socket] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.hang:  # accepted, never answered: a store that hangs
                self.held.append(conn)
                continue
            if not self.open:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while self.open and (data := a.recv(65536)):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_a_replica_that_cannot_reach_the_store_keeps_its_log_and_ships_it_later(s3_bucket: str, s3_endpoint: str,
                                                                               tmp_path: Path, monkeypatch) -> None:
    import fsspec

    from modelcycle.serving.predlog import PredictionLog
    from modelcycle.store.predictions import read_log

    gate = _Gate(s3_endpoint)
    # the replica reaches the store through the gate (its own client: s3fs caches one per set of options)
    fs = fsspec.filesystem("s3", endpoint_url=gate.url, skip_instance_cache=True,
                           config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5})
    from modelcycle.store.predictions import LogRoot

    root = LogRoot(f"s3://{s3_bucket}/artifacts")
    root.fs = fs
    log = PredictionLog(root, spool=tmp_path / "spool", flush_interval=0.05)
    gate.open = False
    sent = 0
    for k in range(20):
        log.add(_frame([f"down-{k}-{j}" for j in range(5)], time.time()))
        sent += 5
        time.sleep(0.05)
    log.flush(timeout=60)
    assert log.ship_failures >= 1 and log.spool_bytes > 0, "the store was out of reach: the batches wait in the spool"
    assert len(read_log(f"s3://{s3_bucket}/artifacts", "churn")) == 0
    gate.open = True
    deadline = time.monotonic() + 120
    while log.spool_bytes and time.monotonic() < deadline:
        log.ship(force=True)
        time.sleep(0.2)
    assert log.spool_bytes == 0 and log.dropped == 0
    logged = read_log(f"s3://{s3_bucket}/artifacts", "churn")
    assert len(logged) == sent and logged["request_id"].is_unique, "every prediction made while the store was down arrived"
    log.close()
    gate.close()


def test_a_full_spool_drops_and_counts_and_never_grows_past_its_bound(s3_bucket: str, tmp_path: Path) -> None:
    import fsspec

    from modelcycle.serving.predlog import PredictionLog
    from modelcycle.store.predictions import LogRoot

    root = LogRoot(f"s3://{s3_bucket}/artifacts")
    root.fs = fsspec.filesystem("s3", endpoint_url="http://127.0.0.1:9", skip_instance_cache=True,  # nothing listens there
                                config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 1})
    import inspect

    assert inspect.signature(PredictionLog).parameters["max_spool_bytes"].default == 1 << 30, "the README: up to 1 GB of log"
    log = PredictionLog(root, spool=tmp_path / "spool", flush_interval=0.05, max_spool_bytes=20_000)
    for k in range(40):
        log.add(_frame([f"x-{k}-{j}" for j in range(20)], time.time()))
        log.flush(timeout=30)
    on_disk = sum(p.stat().st_size for p in (tmp_path / "spool").rglob("*.parquet"))
    assert on_disk <= 20_000 and log.dropped > 0 and log.written > 0
    log.close()


def _put(s3_bucket: str, key: str, frame: pd.DataFrame) -> str:
    import io
    import os

    import boto3

    from tests.conftest import _boto_credentials

    buf = io.BytesIO()
    frame.to_parquet(buf)
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], **_boto_credentials()).put_object(
        Bucket=s3_bucket, Key=key, Body=buf.getvalue())
    return f"s3://{s3_bucket}/{key}"


def test_a_step_reading_an_object_runs_again_when_the_object_is_rewritten(s3_bucket: str, client: Client) -> None:
    from modelcycle.pipelines import pipeline, step

    @step
    def rows(path: str) -> int:
        import fsspec

        with fsspec.open(path, "rb") as f:
            return len(pd.read_parquet(f))

    @pipeline
    def count(path: str):
        return rows(path)

    url = _put(s3_bucket, "data/train.parquet", pd.DataFrame({"a": range(3000)}))
    assert count.run(path=url, client=client).output == 3000
    again = count.run(path=url, client=client)
    assert again.steps["rows"].cached and again.output == 3000
    _put(s3_bucket, "data/train.parquet", pd.DataFrame({"a": range(500)}))  # the same key, new bytes
    changed = count.run(path=url, client=client)
    assert not changed.steps["rows"].cached and changed.output == 500
    assert "changed in the store" in changed.steps["rows"].reason and url in changed.steps["rows"].reason
    folder = f"s3://{s3_bucket}/data/"
    with pytest.raises(Exception):  # noqa: B017 - a prefix is not one Parquet file: the step fails, and is keyed by the listing
        count.run(path=folder, client=client)

    @step
    def files(path: str) -> int:
        import fsspec

        fs, root = fsspec.core.url_to_fs(path)
        return len(fs.ls(root, refresh=True))

    @pipeline
    def listing(path: str):
        return files(path)

    assert listing.run(path=folder, client=client).output == 1
    before = listing.run(path=folder, client=client)
    assert before.steps["files"].cached
    _put(s3_bucket, "data/more.parquet", pd.DataFrame({"a": range(10)}))  # a new object under the prefix
    after = listing.run(path=folder, client=client)
    assert not after.steps["files"].cached and after.output == 2


def test_the_agent_sees_new_objects_under_an_s3_data_source(s3_bucket: str, tmp_path: Path) -> None:
    from modelcycle.automation import load_spec
    from modelcycle.automation.agent import data_fingerprint
    from modelcycle.automation.spec import SpecError

    prefix = f"s3://{s3_bucket}/incoming/"
    assert data_fingerprint(prefix) == ("", 0)
    _put(s3_bucket, "incoming/batch-1.parquet", pd.DataFrame({"a": [1.0], "y": [0]}))
    first = data_fingerprint(prefix)
    assert first[1] == 1
    _put(s3_bucket, "incoming/batch-2.parquet", pd.DataFrame({"a": [2.0], "y": [1]}))
    second = data_fingerprint(prefix)
    assert second[1] == 2 and second[0] != first[0]
    _put(s3_bucket, "incoming/batch-2.parquet", pd.DataFrame({"a": [3.0], "y": [1]}))  # rewritten in place
    assert data_fingerprint(prefix)[0] != second[0]
    spec = tmp_path / "modelcycle.yaml"
    spec.write_text(f"name: churn\nexecutor: dask://127.0.0.1:8786\ndata: {{source: '{prefix}'}}\n")
    loaded = load_spec(spec)
    assert loaded.data_source == prefix and loaded.executor == "dask://127.0.0.1:8786"
    spec.write_text("name: churn\nexecutor: kubernetes\n")
    with pytest.raises(SpecError, match="executor 'kubernetes' must be local, dask"):
        load_spec(spec)


def test_server_processes_sharing_a_spool_keep_its_size_right(s3_bucket: str, tmp_path: Path) -> None:
    """The workers of one server share its spool and may ship each other's files: each one's count of what waits
    is read from the folder, so none believes the spool full of files another already shipped."""
    import fsspec

    from modelcycle.serving.predlog import PredictionLog
    from modelcycle.store.predictions import LogRoot, read_log

    down = LogRoot(f"s3://{s3_bucket}/artifacts")
    down.fs = fsspec.filesystem("s3", endpoint_url="http://127.0.0.1:9", skip_instance_cache=True,
                                config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 1})
    first = PredictionLog(down, spool=tmp_path / "spool", flush_interval=0.05)
    first.add(_frame([f"a{j}" for j in range(50)], time.time()))
    first.flush(timeout=30)
    assert first.spool_bytes > 0
    second = PredictionLog(f"s3://{s3_bucket}/artifacts", spool=tmp_path / "spool", flush_interval=0.05)  # reaches the store
    second.ship(force=True)
    assert second.spool_bytes == 0 and len(read_log(f"s3://{s3_bucket}/artifacts", "churn")) == 50
    first.ship(force=True)
    assert first.spool_bytes == 0
    first.close()
    second.close()


def test_a_label_sent_to_the_other_replica_right_after_the_prediction_is_stored(team: Settings, tmp_path: Path) -> None:
    """Replica 1 publishes what it answered every second; replica 2 gets the label first: it waits for it."""
    from modelcycle.errors import InvalidInputError
    from modelcycle.serving.model_server import LABEL_WAIT
    from modelcycle.serving.predlog import PredictionLog
    from modelcycle.store.predictions import append_labels

    first = PredictionLog(team.log_uri, spool=tmp_path / "one" / "spool", flush_interval=1.0)
    first.add(_frame(["just-now"], time.time()))  # queued: not yet in the shared log
    assert append_labels(team.log_uri, "churn", ["just-now"], [1], wait=LABEL_WAIT) == 1
    with pytest.raises(InvalidInputError, match="send the labels again later"):
        append_labels(team.log_uri, "churn", ["never-answered"], [1], wait=0.5)
    first.close()


def test_a_hostile_spool_ships_nothing_it_did_not_write(s3_bucket: str, tmp_path: Path) -> None:
    """Symlinks (to the process' environment), FIFOs, oversized files and files outside the spool's log folders are
    moved aside and counted, never uploaded; the real batches are shipped."""
    import os

    import fsspec

    from modelcycle.serving import predlog
    from modelcycle.serving.predlog import PredictionLog

    spool = tmp_path / "spool"
    day = spool / "predictions" / "model=churn" / "date=2026-12-01"
    day.mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("AWS_SECRET_ACCESS_KEY=do-not-ship")
    (day / "part-1796119480108642462-evil_env.parquet").symlink_to(secret)
    os.mkfifo(day / "part-1796119480108642463-evil_fifo.parquet")
    with open(day / "part-1796119480108642464-evil_huge.parquet", "wb") as f:
        f.truncate(predlog.MAX_BATCH_BYTES + 1)
    (spool / "registry-like").mkdir()
    (spool / "registry-like" / "part-1796119480108642465-evil_np.parquet").write_text("not parquet")
    log = PredictionLog(f"s3://{s3_bucket}/artifacts", spool=spool, flush_interval=0.05)
    log.add(_frame(["real"], time.time()))
    log.flush(timeout=60)
    log.close()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    shipped = [p for p in fs.find(f"{s3_bucket}/artifacts")]
    assert len(shipped) == 1 and "evil" not in shipped[0], shipped
    assert log.refused == 3 and secret.read_text() != "" and not (day / "part-1796119480108642462-evil_env.parquet").exists()
    assert all(not any(f.startswith("part-") for f in names) for _, _, names in os.walk(day))


def test_a_store_that_hangs_holds_up_neither_the_log_nor_the_shutdown(s3_bucket: str, s3_endpoint: str, tmp_path: Path,
                                                                       monkeypatch) -> None:
    """The store accepts connections and never answers: batches keep going to the spool on time, uploads are given
    up after UPLOAD_TIMEOUT and tried again, close() returns, and once the store answers everything arrives."""
    import fsspec

    from modelcycle.serving import predlog
    from modelcycle.serving.predlog import PredictionLog
    from modelcycle.store.predictions import LogRoot, read_log

    monkeypatch.setattr(predlog, "UPLOAD_TIMEOUT", 2.0)
    gate = _Gate(s3_endpoint)
    root = LogRoot(f"s3://{s3_bucket}/artifacts")
    root.fs = fsspec.filesystem("s3", endpoint_url=gate.url, skip_instance_cache=True,
                                config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 600})
    log = PredictionLog(root, spool=tmp_path / "spool", flush_interval=0.05)
    gate.hang = True
    for k in range(10):
        log.add(_frame([f"hung-{k}"], time.time()))
        time.sleep(0.1)
    log.flush(timeout=30, ship=False)
    deadline = time.monotonic() + 60
    while log.ship_failures < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.ship_failures >= 1 and log.written == 10, "the batches were written to the spool while the store hung"
    gate.hang = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_log(f"s3://{s3_bucket}/artifacts", "churn")) < 10:
        time.sleep(0.5)
    assert len(read_log(f"s3://{s3_bucket}/artifacts", "churn")) == 10
    started = time.monotonic()
    log.close()
    assert time.monotonic() - started < 60
    gate.close()


def test_an_objects_fingerprint_is_what_the_store_says_now(s3_bucket: str) -> None:
    from modelcycle.store.locations import fingerprint

    url = _put(s3_bucket, "data/train.parquet", pd.DataFrame({"a": [1]}))
    before = fingerprint(url)
    fingerprint(f"s3://{s3_bucket}/data/")  # lists the prefix: s3fs caches the listing in this process
    _put(s3_bucket, "data/train.parquet", pd.DataFrame({"a": [1, 2, 3]}))
    assert fingerprint(url) != before


def test_reading_the_log_on_the_object_store_costs_one_request_per_file(team: Settings, requests: Requests) -> None:
    """Monitoring and labels read a log file in one GET (not a HEAD, a footer and then its columns): on an object
    store a request costs far more than the bytes of a small file."""
    from modelcycle.store.predictions import log_root, model_dir, read_log, write_atomic

    root = log_root(team.log_uri)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    for i in range(6):
        frame = pd.DataFrame({"request_id": [f"r{i}-{j}" for j in range(50)], "row": 0, "time": pd.Timestamp.now(tz="UTC"),
                              "model": "churn", "version": 1, "role": "champion", "input.a": np.arange(50.0), "prediction": 1})
        write_atomic(frame, f"{model_dir(root, 'predictions', 'churn')}/date={day}", root=root, writer="replica")
    requests.take()
    assert len(read_log(root, "churn")) == 300
    calls = requests.take()
    objects = [c for c in calls if c.startswith("GET") and ".parquet" in c]
    assert len(objects) == 6 and not [c for c in calls if c.startswith("HEAD")], calls


def test_without_the_store_labels_and_monitoring_say_so_in_one_line(s3_bucket: str, s3_endpoint: str, tmp_path: Path) -> None:
    """The object store is out of reach (connections refused): labels and monitoring fail with one message that says
    the store could not be reached, never a driver's stack trace."""
    import os
    import subprocess
    import sys

    import fsspec

    from modelcycle.errors import ArtifactError
    from modelcycle.store.predictions import LogRoot, append_labels, read_log
    from tests.conftest import S3_ENV

    gate = _Gate(s3_endpoint)
    gate.open = False
    try:
        root = LogRoot(f"s3://{s3_bucket}/artifacts")
        root.fs = fsspec.filesystem("s3", endpoint_url=gate.url, skip_instance_cache=True,
                                    config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2, "read_timeout": 5})
        with pytest.raises(ArtifactError, match="cannot list the prediction log at s3://"):
            append_labels(root, "churn", ["a"], [1])
        with pytest.raises(ArtifactError, match="cannot list the prediction log"):
            read_log(root, "churn")
        env = {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": gate.url, "AWS_MAX_ATTEMPTS": "1", "MODELCYCLE_HOME": str(tmp_path / "m"),
               "MODELCYCLE_ARTIFACT_URI": f"s3://{s3_bucket}/artifacts", "MODELCYCLE_CAPTURE": "0"}
        out = subprocess.run([sys.executable, "-m", "modelcycle", "monitor", "churn"], env=env, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
        assert "cannot list the prediction log" in out.stderr and len(out.stderr.strip().splitlines()) <= 3, out.stderr
    finally:
        gate.close()


def test_labels_sent_while_the_store_is_out_of_reach_are_answered_503(s3_bucket: str, s3_endpoint: str, tmp_path: Path) -> None:
    """A replica whose object store refuses connections keeps answering predictions, and answers labels with 503 and a
    message that says the store cannot be reached (never a 500)."""
    import os

    import httpx
    from sklearn.linear_model import LogisticRegression

    from modelcycle.registry import Registry
    from tests.conftest import S3_ENV
    from tests.serving.test_server_process import start

    team = Settings.for_home(tmp_path / "laptop", capture=False).replace(artifact_uri=f"s3://{s3_bucket}/artifacts",
                                                                         store_uri=f"sqlite:///{tmp_path / 'shared.db'}")
    client = Client(team)
    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0)[::-1]})
    with client.start_run(experiment="outage"):
        logged = client.log_model(LogisticRegression().fit(X, (X["a"] > 20).astype(int)), reference_data=X)
    registry = Registry(client)
    registry.register_model(logged, "churn")
    registry.set_alias("churn", "champion", 1)
    client.close()
    gate = _Gate(s3_endpoint)
    env = {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": gate.url, "AWS_MAX_ATTEMPTS": "1", "MODELCYCLE_STORE_URI": team.store_uri,
           "MODELCYCLE_ARTIFACT_URI": team.artifact_uri}
    proc, url = start(tmp_path / "replica", env=env, model="churn@champion")
    try:
        answer = httpx.post(f"{url}/predict", json={"records": [{"a": 1.0, "b": 2.0}]}, timeout=60)
        assert answer.status_code == 200, answer.text
        gate.open = False
        assert httpx.post(f"{url}/predict", json={"records": [{"a": 3.0, "b": 2.0}]}, timeout=60).status_code == 200
        sent = httpx.post(f"{url}/labels", json={"request_ids": [answer.headers["x-request-id"]], "labels": [1]}, timeout=300)
        assert sent.status_code == 503, sent.text
        assert sent.json()["error"]["code"] == "store_unreachable" and "cannot" in sent.json()["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        gate.close()


def test_publishing_one_name_at_once_on_the_object_store_keeps_the_first(s3_bucket: str) -> None:
    """A file published without replacing (as the team server publishes the log) by many at once: one wins, the others
    are told, and the object holds the winner's bytes (a conditional PUT, not a look then a write)."""
    import threading

    from modelcycle.store.predictions import LogRoot

    root = LogRoot(f"s3://{s3_bucket}/log")
    path = root.join("predictions", "model=churn", "date=2026-01-01", "part-1-w_a.parquet")
    won: list[int] = []
    start = threading.Barrier(8)

    def publish(i: int) -> None:
        start.wait()
        if root.write_bytes(path, f"writer {i}".encode(), replace=False):
            won.append(i)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1, won
    assert root.fs.cat_file(path) == f"writer {won[0]}".encode()
    assert root.write_bytes(path, b"late", replace=False) is False and root.fs.cat_file(path) == f"writer {won[0]}".encode()
