"""Schemathesis generates requests from the server's OpenAPI document: none may get a 500 or break the server."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from modelcycle.registry import Registry  # noqa: E402
from modelcycle.serving.app import ServeConfig, create_app  # noqa: E402
from modelcycle.tracking.client import Client  # noqa: E402


def test_generated_requests_never_get_a_server_error(client: Client) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    with client.start_run(experiment="fuzz"):
        logged = client.log_model(LogisticRegression().fit(X, (X["a"] > 0).astype(int)), reference_data=X)
    Registry(client).register_model(logged, "fuzz")
    client.flush()
    config = ServeConfig(log_predictions=False, allowed_hosts=["testserver", "localhost"])  # the names schemathesis' client sends
    app = create_app(client.settings, "models:/fuzz/1", config=config, client=client)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case) -> None:
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} {case.body!r:.200} -> {response.status_code} {response.text[:200]}")
            assert "Traceback" not in response.text

        check()
    assert not failures, "\n".join(failures[:10])
