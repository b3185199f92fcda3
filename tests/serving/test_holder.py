"""The served model follows its alias: a version that cannot be read for a moment is tried again, a refused one is not."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.registry import Registry
from modelcycle.serving.holder import ModelHolder
from modelcycle.tracking.client import Client

pytest.importorskip("sklearn")


def _two_versions(client: Client) -> Registry:
    from sklearn.linear_model import LogisticRegression

    registry = Registry(client)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.random(200), "b": rng.random(200)})
    y = (X["a"] > 0.5).astype(int)
    for C in (1.0, 0.5):
        with client.start_run(experiment="e"):
            logged = client.log_model(LogisticRegression(C=C).fit(X, y), reference_data=X)
        registry.register_model(logged, "m")
    registry.set_alias("m", "champion", 1)
    return registry


def _blob(client: Client, registry: Registry, version: int) -> Path:
    run = client.get_run(registry.get_model_version("m", version).run_id)
    digest = next(a.digest for a in run.artifacts if a.path.endswith("model.skops"))
    return next(Path(client.settings.artifact_uri).rglob(digest))


def _until(condition, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_a_version_that_cannot_be_read_for_a_moment_is_served_once_it_can(client: Client) -> None:
    registry = _two_versions(client)
    holder = ModelHolder(registry, "models:/m@champion", poll=0.1)
    blob = _blob(client, registry, 2)
    data = blob.read_bytes()
    blob.chmod(0o644)
    blob.unlink()
    blob.mkdir()  # reading it fails with an OSError: the store, not the package
    registry.set_alias("m", "champion", 2)
    assert holder.check() is False and holder.version == 1
    assert "trying again in" in holder.last_error and holder.failures == 0, "not given up on"
    blob.rmdir()
    blob.write_bytes(data)
    _until(lambda: holder.check() or holder.version == 2, "the version is served")
    assert holder.version == 2 and holder.failures == 0


def test_a_refused_package_is_not_tried_again(client: Client) -> None:
    registry = _two_versions(client)
    holder = ModelHolder(registry, "models:/m@champion", poll=0.1)
    blob = _blob(client, registry, 2)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-8] + b"damaged!")
    registry.set_alias("m", "champion", 2)
    assert holder.check() is False and holder.failures == 1 and "did not load and is not served" in holder.last_error
    assert holder.check() is False and holder.failures == 1, "remembered: not loaded again"
    assert holder.version == 1
