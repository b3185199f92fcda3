"""A team on shared infrastructure, as separate processes with separate folders: a PostgreSQL store, an
S3-compatible object store, two `modelcycle serve` replicas, and laptops that know only the URIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelcycle.registry import Registry
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client
from tests.conftest import S3_ENV
from tests.serving.test_server_process import start

pytestmark = pytest.mark.postgres


def machine_env(uris: dict[str, str], home: Path) -> dict[str, str]:
    """The environment of one machine of the team: its own folder, the shared URIs and the object store's keys."""
    return {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": uris["endpoint"], "MODELCYCLE_HOME": str(home),
            "MODELCYCLE_STORE_URI": uris["store"], "MODELCYCLE_ARTIFACT_URI": uris["artifacts"], "MODELCYCLE_CAPTURE": "0",
            "COLUMNS": "200"}


@pytest.fixture
def uris(pg_uri: str, s3_bucket: str, s3_endpoint: str) -> dict[str, str]:
    return {"store": pg_uri, "artifacts": f"s3://{s3_bucket}/artifacts", "endpoint": s3_endpoint}


def data(n: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(size=n)})
    return X, (X["a"] + 0.3 * X["b"] > shift).astype(int)


def test_two_replicas_one_log_labels_anywhere_and_monitoring_from_a_third_machine(uris: dict[str, str], tmp_path: Path) -> None:
    laptop = Settings.for_home(tmp_path / "laptop-a", capture=False).replace(store_uri=uris["store"], artifact_uri=uris["artifacts"])
    client = Client(laptop)
    X, y = data(500, 0)
    with client.start_run(experiment="team"):
        logged = client.log_model(LogisticRegression().fit(X, y), reference_data=X)
    registry = Registry(client)
    registry.register_model(logged, "churn")
    registry.set_alias("churn", "champion", 1)
    client.close()

    replicas = []
    try:
        for name in ("replica-1", "replica-2"):
            env = machine_env(uris, tmp_path / name)
            replicas.append(start(tmp_path / name, env=env, model="churn@champion"))
        answered: dict[str, list[str]] = {}
        for (_, url), seed in zip(replicas, (1, 2), strict=True):
            X_live, _ = data(40, seed)
            ids = []
            for i in range(len(X_live)):
                r = httpx.post(f"{url}/predict", json={"records": [X_live.iloc[i].to_dict()]}, timeout=30)
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-request-id"])
            answered[url] = ids
        (_, first), (_, second) = replicas
        # labels for what replica 1 answered, sent through "the load balancer" to replica 2
        sent = httpx.post(f"{second}/labels", json={"request_ids": answered[first][:10], "labels": [1] * 10}, timeout=60)
        assert sent.status_code == 200, sent.text
        # and labels for replica 2's answers from a laptop that knows only the URIs
        other = Settings.for_home(tmp_path / "laptop-b", capture=False).replace(store_uri=uris["store"], artifact_uri=uris["artifacts"])
        from modelcycle.store.predictions import append_labels, read_labels, read_log

        deadline_ids = answered[second][:5]
        import time

        deadline = time.monotonic() + 60  # the replica publishes its log every second
        while len(read_log(other.log_uri, "churn")) < 80 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert append_labels(other.log_uri, "churn", deadline_ids, [0] * 5) == 5
        assert len(read_labels(other.log_uri, "churn")) == 15
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(timeout=60)
    assert not [p for r in ("replica-1", "replica-2") for p in (tmp_path / r).rglob("*.parquet")], \
        "nothing of the log stays on a replica's disk"
    # a third machine: `modelcycle monitor --json` sees every row of both replicas and every label
    out = subprocess.run([sys.executable, "-m", "modelcycle", "monitor", "churn", "--window", "1d", "--json"],
                         env=machine_env(uris, tmp_path / "laptop-c"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert sum(w["rows"] for w in report["windows"]) == 80
    assert sum(w["performance"]["labelled"] for w in report["windows"]) == 15
