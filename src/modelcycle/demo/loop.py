"""The whole loop on generated data with a drift built in, in about two minutes.

1. A project (``modelcycle.yaml``, a training pipeline, a policy) is written and the agent trains,
   gates and promotes a first churn model from the data on disk.
2. The model is served on 127.0.0.1 (hot-swapping, prediction log on); customers are scored and
   their true outcome is sent back (``POST /labels``) a moment later. Those labelled predictions are
   the training data of every later model (``data: {feedback: ...}`` in the spec).
3. Then the customers change (other prices, other usage) and so does what makes them churn:
   monitoring sees the input drift and the falling ROC AUC in the next window, raises alerts, the
   agent retrains on the newest labelled traffic, the gate compares the candidate with the champion
   on the rows predicted after the change, and the candidate is promoted; the server swaps to it.
   A candidate that fails the gate (too little new data yet) is retried once more labels arrived.
4. The traffic goes on until live performance has recovered. The summary shows every window, the
   cycles and the lineage of the retraining; an HTML report has the charts.

The demo succeeds only if the loop closed — drift detected, a candidate promoted after the change,
the server answering with it, live performance back above the policy's threshold; otherwise it says
which stage did not happen (``DemoFailed``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelcycle.entities import Cycle

__all__ = ["DemoFailed", "customers", "main", "write_project"]

WINDOW = 8  # seconds per monitoring window: a day's hours compressed into a demo


def customers(n: int, seed: int, drifted: bool = False) -> Any:
    """Generated customers and whether they churned. After the drift, prices and usage move up and
    churn follows data usage and tenure instead of support calls and charges."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, n).clip(0, 72)
    charges = rng.normal(95 if drifted else 70, 20, n).clip(18, 160)
    calls = rng.poisson(1.5, n).astype(float)
    data_gb = rng.gamma(2.0, 12.0 if drifted else 5.0, n)
    if drifted:
        logit = 2.0 - 0.12 * tenure + 0.10 * (data_gb - 24) - 0.5 * calls + rng.normal(0, 0.3, n)
    else:
        logit = -0.5 - 0.06 * tenure + 0.06 * (charges - 70) + 0.9 * calls + rng.normal(0, 0.3, n)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"tenure_months": tenure.round(1), "monthly_charges": charges.round(2), "support_calls": calls,
                         "data_gb": data_gb.round(2), "churned": churned})


def write_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    from modelcycle._templates import render

    for rel, text in render("demo", {"__WINDOW__": str(WINDOW)}).items():
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as r:
        return {"body": json.loads(r.read()), "version": r.headers.get("X-Model-Version"), "id": r.headers.get("X-Request-ID")}


class _Server:
    """The prediction server in a thread of this process (``modelcycle serve`` runs the same app in its own)."""

    def __init__(self, settings: Any, uri: str):
        import uvicorn

        from modelcycle.serving.app import ServeConfig, create_app

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(settings, uri, config=ServeConfig(poll_seconds=0.5, freeze_gc=False))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="modelcycle-demo-server", daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.time() + 60
        while time.time() < deadline:
            if not self.thread.is_alive():  # uvicorn gave up (the port was taken, say): no point in waiting
                raise RuntimeError(f"the demo server could not start on {self.url}")
            try:
                with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the demo server did not start")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class DemoFailed(Exception):
    """The loop did not close; the message says which stage did not happen and why."""

    def __init__(self, message: str, result: dict[str, Any] | None = None):
        super().__init__(message)
        self.result = result or {}


def main(folder: Path | None = None, seconds_before: float = 3.2 * WINDOW, max_seconds_after: float = 14 * WINDOW,
         recovery_windows: int = 2) -> dict[str, Any]:
    """Run the loop; returns what happened (the tests check it).

    Traffic goes on after the change until the retrained model has served ``recovery_windows`` full windows, or
    ``max_seconds_after`` passed.

    Raises:
        DemoFailed: the loop did not close (the first model, the detection, the promotion, the swap or the recovery
            did not happen); the summary is printed first.
    """
    from modelcycle.automation import Agent, load_spec
    from modelcycle.tracking.fluent import get_client

    con = _console()
    client = get_client()
    home = Path(client.settings.home)
    root = write_project(folder or home / "demo" / f"loop-{time.strftime('%Y%m%d-%H%M%S')}")
    spec = load_spec(root)
    started = time.time()
    con.rule("[bold]modelcycle demo — the closed loop: train, serve, monitor, detect drift, retrain, gate, promote, swap")
    con.print(f"project: {root}  (spec {root / 'modelcycle.yaml'}; store {home})")

    def say(line: str) -> None:
        from rich.markup import escape

        con.print(f"  [dim]{time.time() - started:5.1f}s[/] [magenta]agent[/] {escape(line)}")

    customers(2400, 0).to_parquet(root / "data" / "customers-0000.parquet", index=False)
    agent = Agent(spec, client=client, say=say, lease_seconds=60)
    con.print("\n[bold]1. First model[/]: the agent trains on the customers on disk, gates and promotes")
    first = agent.run_now("the project's first model")
    if first.state != "done":
        why = first.why or first.state
        raise DemoFailed(f"The first model was not promoted: its cycle ended {first.state} ({why}). Nothing was served, "
                         "so the loop could not start.", {"root": root, "first": first})

    con.print(f"\n[bold]2. Serving[/] {spec.model}@champion (version {first.version}) on 127.0.0.1; "
              f"customers are scored and their outcome comes back a moment later")
    loop = threading.Thread(target=agent.run_forever, kwargs={"interval": 2.0}, name="modelcycle-demo-agent", daemon=True)
    served: list[tuple[float, str | None, bool]] = []
    drift_at = 0.0
    retrain: Cycle | None = None
    busy = False
    with _Server(client.settings, f"models:/{spec.model}@champion") as server:
        loop.start()
        t0 = time.time()
        batch_no, last_version = 0, None
        pending: list[tuple[str, list[int]]] = []
        next_look = 0.0
        while True:
            now = time.time()
            if now - t0 >= seconds_before + max_seconds_after:
                break
            if drift_at and now >= next_look:  # the newest retrained model, and whether a cycle is still at work
                next_look = now + 1.0
                retrain, busy = _latest_retrain(client, spec, drift_at)
            if retrain is not None and not busy and now >= retrain.finished_at + (recovery_windows + 1.5) * WINDOW:
                break  # the newest model has served full windows and no retraining is under way: enough to judge
            drifted = now - t0 >= seconds_before
            if drifted and not drift_at:
                drift_at = now
                con.print(f"\n[bold]3. The customers change[/] ({now - started:.0f}s): higher prices and data use, "
                          "and churn now follows data use — watch monitoring and the agent")
            frame = customers(40, 1000 + batch_no, drifted)
            batch_no += 1
            answer = _post(server.url + "/predict", {"records": frame.drop(columns=["churned"]).to_dict("records")})
            served.append((time.time(), answer["version"], drifted))
            if answer["version"] != last_version:
                if last_version is not None:
                    con.print(f"  [dim]{time.time() - started:5.1f}s[/] [green]server[/] now answers with version {answer['version']}")
                last_version = answer["version"]
            pending.append((answer["id"], frame["churned"].tolist()))
            if len(pending) >= 5:  # outcomes come back in batches: the server joins them to its predictions
                ids = [rid for rid, labels in pending for _ in labels]
                rows = [i for _, labels in pending for i in range(len(labels))]
                _post(server.url + "/labels", {"request_ids": ids, "labels": [v for _, labels in pending for v in labels], "rows": rows})
                pending = []
            time.sleep(0.2)
        agent.stop()
        loop.join(timeout=120)
    return _summary(con, client, spec, root, started, t0, drift_at, first, served)


def _retrains(client: Any, spec: Any, drift_at: float) -> list[Cycle]:
    """The cycles started by drift or performance after the change that promoted their candidate, oldest first."""
    cycles = client.store.cycle_list(spec.name, 50)
    done = [c for c in cycles if c.trigger in ("drift", "performance") and c.state == "done" and c.started_at > drift_at]
    return sorted(done, key=lambda c: c.started_at)


def _latest_retrain(client: Any, spec: Any, drift_at: float) -> tuple[Cycle | None, bool]:
    """The newest retraining that promoted a model after the change, and whether a cycle is still at work."""

    busy = any(not c.finished for c in client.store.cycle_list(spec.name, 5))
    done = _retrains(client, spec, drift_at)
    return (done[-1] if done else None), busy


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _summary(con: Any, client: Any, spec: Any, root: Path, started: float, t0: float, drift_at: float,
             first: Cycle, served: list[tuple[float, str | None, bool]]) -> dict[str, Any]:
    from rich import box
    from rich.table import Table

    from modelcycle.automation import lineage
    from modelcycle.monitoring import monitor

    con.print(f"\n[bold]4. Summary[/] ({time.time() - started:.0f}s)")
    report = monitor(spec.model, f"{WINDOW}s", start=t0 - 1, end=time.time(), client=client)
    threshold = spec.performance_min if spec.performance_min is not None else 0.75
    table = Table(title=f"{spec.model}: monitoring windows of {WINDOW} s", header_style="bold", box=box.SIMPLE_HEAD)
    for col in ("window", "rows", "version", "drift", "drifted columns", "pred. drift", "labelled", "roc_auc"):
        table.add_column(col, justify="left" if col in ("window", "drifted columns") else "right")
    for w in report.windows:
        if not w.rows:
            continue
        drift = w.drift or {}
        auc = w.metrics.get("roc_auc")
        table.add_row(w.label[11:], f"{w.rows:,}", str(w.version), f"{drift.get('share', 0):.0%}" if drift else "—",
                      ", ".join(drift.get("drifted_columns", [])), f"{w.prediction_drift['statistic']:.2f}" if w.prediction_drift else "—",
                      str(w.labelled), "—" if auc is None else f"[{'red' if auc < threshold else 'green'}]{auc:.3f}[/]")
    con.print(table)
    cycles = client.store.cycle_list(spec.name, 50)
    ctable = Table(title="continuous-training cycles", header_style="bold", box=box.SIMPLE_HEAD)
    for col in ("cycle", "trigger", "state", "version", "why"):
        ctable.add_column(col)
    for cy in reversed(cycles):
        why = cy.why
        ctable.add_row(cy.id[:8], cy.trigger, cy.state, str(cy.version), why[:110])
    con.print(ctable)
    retrains = _retrains(client, spec, drift_at) if drift_at else []
    retrain = retrains[0] if retrains else None  # the first answer to the change: its lineage is shown
    newest = retrains[-1] if retrains else None  # the model serving at the end: its windows show the recovery
    chain = lineage(retrain.id, client=client) if retrain else None
    if chain:
        con.print("[bold]Lineage of the retraining[/] (`modelcycle lineage " + retrain.id[:8] + "`):")
        for link in chain["chain"]:
            shown = {k: v for k, v in link.items() if k in ("kind", "message", "run_id", "version", "passed", "compared_with",
                                                             "to_version", "first_answer")}
            if link["step"] == "later moves":
                shown = {"to versions": ", ".join(str(e["to_version"]) for e in link["events"])}
            con.print(f"  → {link['step']}: " + ", ".join(f"{k} {str(v)[:90]}" for k, v in shown.items()))
    page = root / "report.html"
    report.to_html(str(page))
    labelled = [w for w in report.windows if w.rows and "roc_auc" in w.metrics and w.labelled >= spec.min_labelled]
    before = [w.metrics["roc_auc"] for w in labelled if w.end <= drift_at]
    after = [w.metrics["roc_auc"] for w in labelled if newest and w.version == newest.version and w.start >= newest.finished_at]
    during = [w.metrics["roc_auc"] for w in labelled if w.start >= drift_at and w.version == first.version]  # the old model, after
    con.print(f"\nROC AUC before the drift {_mean(before)}, after the change {_mean(during)}, "
              f"served by version {newest.version if newest else '—'} at the end: {_mean(after)}")
    con.print(f"Report with the drift and performance charts: [cyan]{page}[/]")
    con.print(f"Explore: [cyan]modelcycle monitor {spec.model} --window {WINDOW}s[/], [cyan]modelcycle alerts[/], "
              f"[cyan]modelcycle agent --status --spec {root}[/], [cyan]modelcycle models history {spec.model}[/]")
    result = {"root": root, "first": first, "cycles": cycles, "retrain": retrain, "newest": newest, "report": report,
              "served": served, "drift_at": drift_at, "html": page, "lineage": chain, "before": before, "during": during,
              "after": after}
    problem = _not_closed(client, spec, result, threshold)
    result["closed"] = problem is None
    if problem is not None:
        con.print(f"[dim]finished in {time.time() - started:.0f} s[/]")
        raise DemoFailed(problem, result)
    con.print(f"[bold green]The loop closed[/]: drift detected, version {newest.version if newest else '?'} trained on the "
              f"newest labelled traffic, gated, promoted and served; live ROC AUC back above {threshold:g}. "
              f"[dim]finished in {time.time() - started:.0f} s[/]")
    return result


def _not_closed(client: Any, spec: Any, result: dict[str, Any], threshold: float) -> str | None:
    """None when the loop closed; else one paragraph naming the first stage that did not happen, and why."""
    drift_at, retrain, cycles = result["drift_at"], result["newest"], result["cycles"]
    after_change = [c for c in cycles if c.started_at > drift_at and c.trigger in ("drift", "performance")]
    alerts = [a for a in client.store.alert_list(spec.model, 100) if a.rule in ("drift", "performance") and a.raised_at > drift_at]
    if not drift_at:
        return "The customers never changed: the demo stopped before the drift (it was interrupted)."
    if not alerts and not after_change:
        return (f"The change was not detected: no drift or performance alert was raised after it. Monitoring judges closed "
                f"windows of {WINDOW} s with at least {spec.min_rows} rows; see `modelcycle monitor {spec.model} --window {WINDOW}s`.")
    if retrain is None:
        seen = "; ".join(f"cycle {c.id[:8]} ended {c.state}"
                         + (f" ({c.why[:160]})"
                            if c.state in ("failed", "rejected") else "") for c in reversed(after_change)) or "no cycle ran"
        return (f"The change was detected, but no retrained model was promoted: {seen}. "
                f"`modelcycle agent --status --spec {result['root']}` shows what the agent waits for.")
    version = str(retrain.version)
    if not any(v == version for _, v, _ in result["served"]):
        return (f"Version {version} was promoted, but the server never answered with it (it kept serving "
                f"{result['served'][-1][1] if result['served'] else 'nothing'}); `modelcycle models history {spec.model}` and the "
                "server's /version show why.")
    after = result["after"]
    if not after:
        return (f"Version {version} was promoted and served, but no window it served had {spec.min_labelled} labelled rows before "
                "the demo ended, so the recovery could not be measured.")
    mean = sum(after) / len(after)
    if mean < threshold:
        return (f"Version {version} was promoted and served, but live ROC AUC stayed at {mean:.3f}, below the policy's "
                f"{threshold:g}: the retrained model did not recover the performance.")
    return None


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.3f} over {len(values)} windows" if values else "—"


if __name__ == "__main__":
    main()
