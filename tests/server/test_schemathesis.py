"""Schemathesis generates requests from the team server's OpenAPI document, as an admin and as no one: none may get a
500, and no answer may carry a stack trace or say where the server keeps its records."""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from modelcycle.server.app import create_app  # noqa: E402
from modelcycle.settings import Settings  # noqa: E402

TOKEN = "mc_schemathesis-admin-token"


def test_generated_requests_never_get_a_server_error(tmp_path: Path) -> None:
    home = Settings.for_home(tmp_path / "server", capture=False)
    app = create_app(home, token=TOKEN, allowed_hosts=["testserver", "localhost"])  # the names schemathesis' client sends
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers={"Authorization": f"Bearer {TOKEN}"})
    failures: list[str] = []
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) > 45, "every call, blob and log route is in the document"
    for op in operations:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=op.as_strategy())
        def check(case) -> None:
            for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
                try:
                    response = case.call(headers=headers)
                except Exception as e:  # the application raised instead of answering: what a client sees as a 500
                    failures.append(f"{case.method} {case.path} {case.body!r:.200} -> {type(e).__name__}: {str(e)[:300]}")
                    return
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.path} {case.body!r:.200} -> {response.status_code} {response.text[:300]}")
                assert "Traceback" not in response.text and str(tmp_path) not in response.text, response.text[:500]

        check()
    assert not failures, "\n".join(failures[:10])
