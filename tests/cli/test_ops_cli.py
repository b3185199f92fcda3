"""`modelcycle monitor`, `alerts`, `agent` and `lineage` through Typer's runner, on a real store and project."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from modelcycle.cli import app
from modelcycle.monitoring.alerts import AlertRules, flush, raise_alert
from modelcycle.registry import Registry
from modelcycle.settings import Settings
from modelcycle.store.predictions import append_labels
from modelcycle.tracking.client import Client

from ..automation.conftest import batch, write_project
from ..monitoring.test_monitor import HOUR, T0, data, log

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MODELCYCLE_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "220")
    return home


def test_monitor_prints_windows_writes_html_and_json(home: Path, tmp_path: Path) -> None:
    client = Client(Settings.for_home(home, capture=False))
    X, y = data(2000, 0)
    model = LogisticRegression().fit(X, y)
    with client.start_run(experiment="m"):
        logged = client.log_model(model, reference_data=X)
    Registry(client).register_model(logged, "churn")
    for hour, shift in ((0, 0.0), (1, 2.5)):
        X, y = data(500, 20 + hour, shift=shift, flip=bool(shift))
        append_labels(client.settings.log_uri, "churn", log(client.settings.log_uri, model, X, T0 + hour * HOUR, HOUR), y.tolist())
    client.close()
    window = ["--window", "1h", "--start", "2026-09-21T14:00:00", "--end", "2026-09-21T16:00:00"]
    assert T0 == 1789999200  # the times above
    out = runner.invoke(app, ["monitor", "churn", *window, "--html", str(tmp_path / "m.html")])
    assert out.exit_code == 0, out.output
    assert "2026-09-21 14:00:00" in out.output and "15:00:00" in out.output and "roc_auc" in out.output
    assert "<svg" in (tmp_path / "m.html").read_text()
    report = json.loads(runner.invoke(app, ["monitor", "churn", *window, "--json"]).output)
    assert [w["rows"] for w in report["windows"]] == [500, 500]
    assert report["windows"][1]["drift"]["dataset_drift"] is True and report["windows"][0]["drift"]["dataset_drift"] is False
    assert {"a", "c"} <= set(report["windows"][1]["drift"]["drifted_columns"])
    bad = runner.invoke(app, ["monitor", "churn", "--window", "soon"])
    assert bad.exit_code == 1 and "write it like 1h" in bad.output and "Traceback" not in bad.output
    import time

    now = time.time()
    log(client.settings.log_uri, model, data(50, 40)[0], now - 30, 20, prefix="now")  # traffic in the window that is still open
    live = runner.invoke(app, ["monitor", "churn", "--window", "1d", "--start", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 3600))])
    assert live.exit_code == 0 and "(open)" in live.output and "still filling" in live.output, live.output
    assert "(open)" not in runner.invoke(app, ["monitor", "churn", *window]).output, "closed windows are not marked"


def test_agent_once_status_alerts_and_lineage(home: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path / "project")
    batch(600, 0).to_parquet(root / "data" / "batch-000.parquet")
    first = runner.invoke(app, ["agent", "--once", "--spec", str(root), "--json"])
    assert first.exit_code == 0, first.output
    [cycle] = json.loads(first.output)
    assert cycle["state"] == "done" and cycle["version"] == 1
    again = runner.invoke(app, ["agent", "--once", "--spec", str(root)])
    assert again.exit_code == 0 and "No trigger fired" in again.output
    forced = runner.invoke(app, ["agent", "--now", "--spec", str(root), "--json"])
    [manual] = json.loads(forced.output)
    assert forced.exit_code == 0 and manual["trigger"] == "manual", forced.output
    assert manual["state"] == "no_change" and manual["detail"]["same_as"] == 1, "the same data and steps: the same model"
    assert manual["version"] is None, "nothing registered"
    status = runner.invoke(app, ["agent", "--status", "--spec", str(root)])
    assert cycle["id"][:8] in status.output and "new_data" in status.output and "done" in status.output
    assert "Now:" not in status.output, "no alert fires: nothing to wait for"
    described = json.loads(runner.invoke(app, ["agent", "--status", "--spec", str(root), "--json"]).output)
    assert [c["id"] for c in described["cycles"]] == [manual["id"], cycle["id"]] and described["waiting"] is None
    chain = runner.invoke(app, ["lineage", cycle["id"][:8]])
    assert chain.exit_code == 0 and "candidate" in chain.output and "alias move" in chain.output, chain.output
    walked = json.loads(runner.invoke(app, ["lineage", "churn/1", "--json"]).output)
    assert walked["cycle_id"] == cycle["id"] and walked["chain"][2]["version"] == 1
    missing = runner.invoke(app, ["lineage", "nothing-like-this"])
    assert missing.exit_code == 1 and "no continuous-training cycle" in missing.output
    assert "No alerts" in runner.invoke(app, ["alerts"]).output


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204 if self.path == "/ok" else 302)
        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_alerts_show_their_webhook_delivery(home: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = Client(Settings.for_home(home, capture=False))
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert "delivery" not in runner.invoke(app, ["alerts"]).output
        raise_alert(client.store, "churn", "no_webhook", "raised without a webhook")
        assert "delivery" not in runner.invoke(app, ["alerts"]).output, "no column when no webhook is configured"
        ok = raise_alert(client.store, "churn", "load_failure", "version 2 failed to load", rules=AlertRules(webhook=f"{url}/ok"))
        moved = raise_alert(client.store, "churn", "cycle_failed", "cycle 1 failed", rules=AlertRules(webhook=f"{url}/moved"))
        assert flush(60)
        waiting = raise_alert(client.store, "iris", "drift", "input drift")  # as if its delivery were still queued
        client.store.alert_delivery(waiting["id"], {"event": "firing", "state": "pending", "attempts": 0, "error": None, "at": 0.0})
    finally:
        flush(60)
        server.shutdown()
        client.close()
    out = runner.invoke(app, ["alerts"])
    assert out.exit_code == 0, out.output
    assert "delivery" in out.output and "delivered" in out.output and "pending" in out.output
    assert "failed: the webhook answered 302" in " ".join(out.output.split())
    found = {a["id"]: a for a in json.loads(runner.invoke(app, ["alerts", "--json"]).output)}
    assert found[ok["id"]]["delivery"]["state"] == "delivered" and found[ok["id"]]["delivery"]["event"] == "firing"
    assert found[moved["id"]]["delivery"]["state"] == "failed" and "redirect" in found[moved["id"]]["delivery"]["error"]
    assert found[waiting["id"]]["delivery"]["state"] == "pending"
