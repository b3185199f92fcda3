"""The web UI at 100,000 runs: modelcycle's UI against MLflow's, side by side in one run, in real Chromium.

Both tools get the same store, generated in bulk (SQLite): an experiment ``bench`` of 100,000 runs × 20 params ×
10 metrics (same names, values and start times in both), and an experiment ``compare`` of 100 runs whose metric
``loss`` has 1,000 steps. Each tool's server runs on 127.0.0.1 (``modelcycle server`` with a user's token;
``mlflow server`` with its SQLite backend), and Chromium (Debian's, driven by playwright) measures:

- ``first rows``: from the start of the navigation to the experiment's runs page in a fresh tab until the newest
  run's name shows (timed in the page, checked on every animation frame);
- ``sort``: from changing the page's address to "ordered by metrics.m0, descending" (what clicking the column
  header does in both UIs) until the run with the highest m0 shows;
- ``filter``: likewise with the filter ``metrics.m0 > 0.999``, until its newest matching run shows;
- ``compare``: from navigation to the comparison of the 100 runs, the metric ``loss`` named in the address in both
  (modelcycle's compare page, MLflow's metric page) until the chart holds a line per run;
- the page's memory after the runs page, sort and filter: the browser's renderer processes (their proportional
  set size, PSS: shared pages split among the processes sharing them) and the page's JavaScript heap;
- the search API behind the table: one page of 100 runs ordered by m0 (modelcycle's ``search_page``, and
  ``count_runs`` for the table's size; MLflow's ``runs/search``).

Each is the median of ``--repeats`` tries (fresh tabs). An MLflow step that has not finished after
``--mlflow-timeout`` seconds is reported as more than that, and its server is restarted (a SQLite query it started
would otherwise hold it). Targets (modelcycle): runs page interactive < 1 s, sort and filter < 300 ms, comparison
drawn < 1 s, page memory < 300 MB.

Usage: ``.venv-bench/bin/python bench/ui.py [--quick] [--no-mlflow] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
sys.path.insert(0, str(HERE))

from _report import print_targets  # noqa: E402
from server import Server  # noqa: E402  # bench/server.py: one server process of either tool

CHROMIUM = "/usr/bin/chromium"
DATA_VERSION = "ui-v1"
PARAMS, METRICS = 20, 10
COMPARE_RUNS, COMPARE_STEPS = 100, 1000
FILTER_VALUE = 0.999
T0 = 1_700_000_000.0  # the first run's start time (seconds)


def values(n: int) -> tuple[list[list[str]], list[list[float]]]:
    """Params and metrics of ``n`` runs, the same for both tools."""
    rng = random.Random(7)
    params = [[f"{rng.choice(['rf', 'gbm', 'lr'])}" if j == 0 else f"{rng.randint(1, 500)}" for j in range(PARAMS)] for _ in range(n)]
    metrics = [[rng.random() for _ in range(METRICS)] for _ in range(n)]
    return params, metrics


def _compare_id(r: int) -> str:
    return f"c{r:031x}"  # apart from the bench runs' ids, f"{i:032x}"


def expected(n: int) -> dict[str, str]:
    """The names the measurements wait for: the newest run, the best m0, the newest run with m0 > FILTER_VALUE."""
    _, metrics = values(n)
    best = max(range(n), key=lambda i: metrics[i][0])
    newest_match = max(i for i in range(n) if metrics[i][0] > FILTER_VALUE)
    return {"newest": f"run-{n - 1:06d}", "best": f"run-{best:06d}", "filtered": f"run-{newest_match:06d}"}


# --- the stores ------------------------------------------------------------------------------------------------------
def modelcycle_store(n: int, console: Any) -> Path:
    """A modelcycle SQLite store of the two experiments, generated through the store's batch writes; cached."""
    cached = CACHE / f"modelcycle-{DATA_VERSION}-{n}.db"
    if cached.exists():
        return cached
    from modelcycle.store import open_metadata_store
    from modelcycle.store.metadata.base import NewRun, WriteBatch

    console.print(f"[dim]generating the modelcycle store of {n:,} runs (once; cached at {cached.relative_to(REPO)}) ...[/]")
    CACHE.mkdir(exist_ok=True)
    partial = cached.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    store = open_metadata_store(f"sqlite:///{partial}")
    params, metrics = values(n)
    bench = store.get_or_create_experiment("bench").id
    for lo in range(0, n, 2000):
        batch = WriteBatch()
        for i in range(lo, min(n, lo + 2000)):
            rid = f"{i:032x}"
            t = T0 + i
            batch.runs.append(NewRun(id=rid, experiment_id=bench, name=f"run-{i:06d}", start_time=t,
                                     params={f"p{j}": v for j, v in enumerate(params[i])}))
            batch.metrics.extend((rid, f"m{j}", v, 0, t) for j, v in enumerate(metrics[i]))
            batch.updates.append((rid, {"status": "FINISHED", "end_time": t + 1}))
        store.write(batch)
    compare = store.get_or_create_experiment("compare").id
    for r in range(COMPARE_RUNS):
        rid = _compare_id(r)
        t = T0 + n + r
        store.write(WriteBatch(runs=[NewRun(id=rid, experiment_id=compare, name=f"cmp-{r:03d}", start_time=t)],
                               metrics=[(rid, "loss", 1 / (s + 1) + r / 1000, s, t + s / 1000) for s in range(COMPARE_STEPS)],
                               updates=[(rid, {"status": "FINISHED", "end_time": t + 2})]))
    store.close()
    os.replace(partial, cached)
    return cached


def mlflow_store(n: int, console: Any) -> Path:
    """The same records in an MLflow SQLite store: its schema made by MLflow, the rows inserted in bulk; cached."""
    from importlib.metadata import version

    cached = CACHE / f"mlflow-{version('mlflow')}-{DATA_VERSION}-{n}.db"
    if cached.exists():
        return cached
    import mlflow

    console.print(f"[dim]generating the MLflow store of {n:,} runs (once; cached at {cached.relative_to(REPO)}) ...[/]")
    CACHE.mkdir(exist_ok=True)
    partial = cached.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{partial}")
    ids = {name: client.create_experiment(name, artifact_location=f"file:///{tempfile.gettempdir()}/mlflow-bench-artifacts")
           for name in ("bench", "compare")}
    db = sqlite3.connect(partial)
    run_cols = [r[1] for r in db.execute("PRAGMA table_info(runs)")]

    def run_row(rid: str, name: str, exp: str, t: float) -> tuple:
        row = {"run_uuid": rid, "name": name, "source_type": "LOCAL", "source_name": "", "entry_point_name": "",
               "user_id": "bench", "status": "FINISHED", "start_time": int(t * 1000), "end_time": int(t * 1000) + 1000,
               "source_version": "", "lifecycle_stage": "active", "artifact_uri": f"file:///tmp/mlflow-bench/{rid}",
               "experiment_id": int(exp), "deleted_time": None}
        return tuple(row.get(c) for c in run_cols)

    insert_run = f"INSERT INTO runs ({', '.join(run_cols)}) VALUES ({', '.join('?' * len(run_cols))})"
    params, metrics = values(n)
    for lo in range(0, n, 5000):
        span = range(lo, min(n, lo + 5000))
        rids = [f"{i:032x}" for i in span]
        db.executemany(insert_run, [run_row(rids[k], f"run-{i:06d}", ids["bench"], T0 + i) for k, i in enumerate(span)])
        db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                       [("mlflow.runName", f"run-{i:06d}", rids[k]) for k, i in enumerate(span)])
        db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                       [(f"p{j}", v, rids[k]) for k, i in enumerate(span) for j, v in enumerate(params[i])])
        rows = [(f"m{j}", v, int((T0 + i) * 1000), rids[k], 0, 0) for k, i in enumerate(span) for j, v in enumerate(metrics[i])]
        db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.executemany("INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", rows)
    for r in range(COMPARE_RUNS):
        rid = _compare_id(r)
        t = T0 + n + r
        db.execute(insert_run, run_row(rid, f"cmp-{r:03d}", ids["compare"], t))
        db.execute("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", ("mlflow.runName", f"cmp-{r:03d}", rid))
        rows = [("loss", 1 / (s + 1) + r / 1000, int((t + s / 1000) * 1000), rid, s, 0) for s in range(COMPARE_STEPS)]
        db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)", rows[-1])
    db.commit()
    db.close()
    os.replace(partial, cached)
    return cached


# --- the browser ------------------------------------------------------------------------------------------------------
class Browser:
    """Chromium with a profile folder of its own, so its renderer processes can be found and measured."""

    def __init__(self, playwright: Any, profile: Path) -> None:
        self.profile = profile
        self.context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, viewport={"width": 1400, "height": 900},
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"])

    def renderer_memory(self) -> int:
        """Bytes the browser's renderer processes hold, each shared page counted in proportion to its sharers (PSS):
        their RSS would count Chromium's shared code once per process."""
        import psutil

        total = 0
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if f"--user-data-dir={self.profile}" in cmd and "--type=" not in cmd:
                for child in p.children(recursive=True):
                    try:
                        if "--type=renderer" in " ".join(child.cmdline()):
                            total += child.memory_full_info().pss
                    except psutil.Error:
                        pass
        return total

    def close(self) -> None:
        self.context.close()


class Tool:
    def __init__(self, name: str, server: Server, n: int) -> None:
        self.name, self.server, self.n = name, server, n
        self.experiment = self._experiment_ids() if name == "mlflow" else {"bench": "bench", "compare": "compare"}

    def _experiment_ids(self) -> dict[str, str]:
        out = {}
        for name in ("bench", "compare"):
            url = f"{self.server.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"
            out[name] = json.loads(urllib.request.urlopen(url, timeout=60).read())["experiment"]["experiment_id"]
        return out

    def runs_url(self, order: str | None = None, filter: str | None = None) -> str:
        if self.name == "modelcycle":
            q = {"experiment": "bench", "order": order and f"metrics.{order} DESC", "filter": filter}
            return f"{self.server.url}/#/runs?{urllib.parse.urlencode({k: v for k, v in q.items() if v})}"
        q = {"orderByKey": order and f"metrics.`{order}`", "orderByAsc": order and "false", "searchFilter": filter}
        query = urllib.parse.urlencode({k: v for k, v in q.items() if v})
        return f"{self.server.url}/#/experiments/{self.experiment['bench']}/runs" + (f"?{query}" if query else "")

    def compare_url(self) -> str:
        runs = [_compare_id(r) for r in range(COMPARE_RUNS)]
        if self.name == "modelcycle":
            return f"{self.server.url}/#/compare?ids={','.join(runs)}&metric=loss"  # the metric named, as MLflow's is
        q = (f"?runs={json.dumps(runs)}&metric={json.dumps('loss')}&experiments={json.dumps([self.experiment['compare']])}"
             f"&plot_metric_keys={json.dumps(['loss'])}&plot_layout={{}}&x_axis=step&y_axis_scale=linear&line_smoothness=1"
             "&show_point=false&deselected_curves=[]&last_linear_y_axis_range=[]")
        return f"{self.server.url}/#/metric{urllib.parse.quote(q, safe='?&=')}"

    def lines(self) -> str:
        """A selector matching one element per drawn line of the comparison chart."""
        return "[data-testid=chart] .u-legend .u-series" if self.name == "modelcycle" else ".js-plotly-plot g.scatterlayer g.trace"

    def prepare(self, context: Any) -> None:
        if self.server.token:
            context.add_init_script(f"sessionStorage.setItem('modelcycle.token', {json.dumps(self.server.token)})")

    def api(self, cap: float) -> float:
        """Seconds for the search the runs table makes when sorted by m0: a page of 100 (and the count, for modelcycle)."""
        t = time.perf_counter()
        if self.name == "modelcycle":
            for call, body in (("count_runs", {"experiments": ["bench"]}),
                               ("search_page", {"experiments": ["bench"], "order_by": ["metrics.m0 DESC"], "limit": 100})):
                req = urllib.request.Request(f"{self.server.url}/api/v1/store/{call}", data=json.dumps(body).encode(), method="POST",
                                             headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.server.token}"})
                urllib.request.urlopen(req, timeout=cap).read()
        else:
            body = {"experiment_ids": [self.experiment["bench"]], "max_results": 100, "order_by": ["metrics.m0 DESC"]}
            req = urllib.request.Request(f"{self.server.url}/api/2.0/mlflow/runs/search", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=cap).read()
        return time.perf_counter() - t


def measure(tool: Tool, playwright: Any, args: Any, tmp: Path, names: dict[str, str], console: Any) -> dict[str, Any]:
    cap = args.mlflow_timeout if tool.name == "mlflow" else 120.0
    out: dict[str, Any] = {k: [] for k in ("first_rows", "sort", "filter", "compare", "rss", "heap", "api")}
    notes: list[str] = []

    def capped(key: str, fn: Any) -> None:
        try:
            out[key].append(fn())
        except Exception as e:  # a timeout: more than the cap
            if not any("timeout" in x.lower() or "timed out" in x.lower() for x in (type(e).__name__, str(e))):
                raise
            out[key].append(None)
            notes.append(f"{key}: not shown after {cap:.0f} s")
            if tool.name == "mlflow":
                restart(tool, tmp)

    for r in range(args.repeats):
        console.print(f"[dim]  {tool.name}: try {r + 1} of {args.repeats} ...[/]")
        browser = Browser(playwright, tmp / f"profile-{tool.name}-{r}")
        try:
            _attempt(tool, browser, names, cap, out, capped)
        finally:
            browser.close()
        capped("api", lambda: tool.api(cap))
    return {"samples": out, "notes": notes}


# Times are taken in the page itself: a check on every animation frame from the navigation's start (or from the moment
# the address changed) until the text shows, so the figure is the page's, not the polling interval of the driver.
_APPEARS = """async ([text, selector, count, capMs, fromMs]) => {
  const start = fromMs === null ? 0 : fromMs;
  const shown = () => {
    if (selector) return document.querySelectorAll(selector).length >= count;
    const r = document.evaluate(`//*[text()='${text}']`, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
    for (let i = 0; i < r.snapshotLength; i++) if (r.snapshotItem(i).getClientRects().length) return true;
    return false;
  };
  while (!shown()) {
    if (performance.now() - start > capMs) return null;
    await new Promise((ok) => requestAnimationFrame(ok));
  }
  return performance.now() - start;
}"""


def _appears(page: Any, cap: float, text: str | None = None, selector: str | None = None, count: int = 1,
             since: float | None = None) -> float:
    ms = page.evaluate(_APPEARS, [text, selector, count, cap * 1000, since])
    if ms is None:
        raise TimeoutError(f"Timeout: {text or selector} not shown after {cap:.0f} s")
    return ms / 1000


def _attempt(tool: Tool, browser: Browser, names: dict[str, str], cap: float, out: dict[str, Any], capped: Any) -> None:
    """One try of every measurement, in a fresh browser: the runs page, sort, filter, memory, then the comparison."""
    tool.prepare(browser.context)
    page = browser.context.new_page()

    def first() -> float:
        page.goto(tool.runs_url(), wait_until="commit")
        return _appears(page, cap, text=names["newest"])  # from the navigation's start

    def then(url: str, text: str) -> float:
        fragment = url.split("#", 1)[1]
        since = page.evaluate("(h) => { const t = performance.now(); location.hash = h; return t; }", fragment)
        return _appears(page, cap, text=text, since=since)

    capped("first_rows", first)
    if out["first_rows"][-1] is not None:
        page.wait_for_timeout(500)  # the page settles (requests the first rows made) before the next step
        capped("sort", lambda: then(tool.runs_url(order="m0"), names["best"]))
        capped("filter", lambda: then(tool.runs_url(filter=f"metrics.m0 > {FILTER_VALUE}"), names["filtered"]))
        cdp = browser.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        heap = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}.get("JSHeapUsedSize", 0)
        out["heap"].append(heap / 1e6)
        out["rss"].append(browser.renderer_memory() / 1e6)
    page.close()
    page = browser.context.new_page()

    def compare() -> float:
        page.goto(tool.compare_url(), wait_until="commit")
        return _appears(page, cap, selector=tool.lines(), count=COMPARE_RUNS)

    capped("compare", compare)


def restart(tool: Tool, tmp: Path) -> None:
    tool.server.stop()
    tool.server = Server(tool.name, tool.server.home)


@contextmanager
def serving(name: str, db: Path, tmp: Path, n: int) -> Any:
    home = tmp / name
    home.mkdir(parents=True)
    shutil.copyfile(db, home / ("modelcycle.db" if name == "modelcycle" else "mlflow.db"))
    if name == "mlflow":  # experiments of model training (MLflow 3 otherwise opens its GenAI overview, without the runs)
        con = sqlite3.connect(home / "mlflow.db")
        con.execute("INSERT OR REPLACE INTO experiment_tags (key, value, experiment_id) SELECT 'mlflow.experimentKind', "
                    "'custom_model_development', experiment_id FROM experiments WHERE name IN ('bench', 'compare')")
        con.commit()
        con.close()
    tool = Tool(name, Server(name, home), n)
    try:
        yield tool
    finally:
        tool.server.stop()


def median(xs: list[float | None]) -> float | None:
    """The median, a None (over the cap) counting as the largest value; None when the median itself is over the cap."""
    if not xs:
        return None
    ordered = sorted(xs, key=lambda x: (x is None, x or 0))
    m = ordered[(len(ordered) - 1) // 2] if len(ordered) % 2 else None
    if len(ordered) % 2 == 0:
        a, b = ordered[len(ordered) // 2 - 1], ordered[len(ordered) // 2]
        m = None if a is None or b is None else (a + b) / 2
    return m


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 runs, 1 repeat")
    parser.add_argument("--runs", type=int, default=None, help="runs in the bench experiment (default 100,000)")
    parser.add_argument("--repeats", type=int, default=None, help="tries per measurement (default 3)")
    parser.add_argument("--no-mlflow", action="store_true", help="measure modelcycle only")
    parser.add_argument("--mlflow-timeout", type=float, default=120.0, help="seconds before an MLflow step counts as over")
    parser.add_argument("--json", help="write the raw numbers here")
    parser.add_argument("--prepare", action="store_true", help="only generate (and cache) the stores")
    args = parser.parse_args()
    args.runs = args.runs or (10_000 if args.quick else 100_000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not Path(CHROMIUM).exists():
        console.print(f"[red]Chromium is not at {CHROMIUM}: apt-get install chromium[/]")
        return 1
    from playwright.sync_api import sync_playwright

    tools = ["modelcycle"] + ([] if args.no_mlflow else ["mlflow"])
    dbs = {"modelcycle": modelcycle_store(args.runs, console)}
    if "mlflow" in tools:
        dbs["mlflow"] = mlflow_store(args.runs, console)
    if args.prepare:
        return 0
    names = expected(args.runs)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mc-bench-ui-") as tmp_name, sync_playwright() as pw:
        tmp = Path(tmp_name)
        for name in tools:
            console.print(f"[dim]{name}: {args.runs:,} runs, {args.repeats} tries ...[/]")
            with serving(name, dbs[name], tmp, args.runs) as tool:
                results[name] = measure(tool, pw, args, tmp, names, console)
            console.print(f"[dim]{name}: {json.dumps(results[name])}[/]")
    rows = {t: {k: median(v) for k, v in r["samples"].items()} for t, r in results.items()}

    def fmt(v: float | None, unit: str, cap: float) -> str:
        if v is None:
            return f"> {cap:.0f} s"
        return f"{v * 1000:,.0f} ms" if unit == "s" else f"{v:,.0f} MB"

    table = Table(title=f"the web UI over {args.runs:,} runs × {PARAMS} params × {METRICS} metrics (SQLite), medians of "
                        f"{args.repeats}", title_justify="left")
    table.add_column("measure")
    for t in tools:
        table.add_column(t, justify="right")
    if "mlflow" in tools:
        table.add_column("modelcycle faster", justify="right")
    labels = {"first_rows": "runs page: first rows shown", "sort": "sort by metrics.m0: sorted rows shown",
              "filter": f"filter metrics.m0 > {FILTER_VALUE}: rows shown",
              "compare": f"compare {COMPARE_RUNS} runs × {COMPARE_STEPS:,} points: drawn",
              "api": "search API: a page of 100 by m0 (+ count)", "rss": "page memory: renderers (PSS)", "heap": "page memory: JS heap"}
    for key, label in labels.items():
        unit = "MB" if key in ("rss", "heap") else "s"
        cells = [fmt(rows[t][key], unit, args.mlflow_timeout if t == "mlflow" else 120) for t in tools]
        if "mlflow" in tools:
            a, b = rows["modelcycle"][key], rows["mlflow"][key]
            ratio = "—" if a is None else (f"> {args.mlflow_timeout / a:,.0f}x" if b is None else f"{b / a:,.1f}x")
            cells.append(ratio if unit == "s" else (f"{b / a:.1f}x less" if a and b else "—"))
        table.add_row(label, *cells)
    console.print(table)
    for t, r in results.items():
        for note in r["notes"]:
            console.print(f"[yellow]{t}: {note}[/]")
    mc = rows["modelcycle"]
    check = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    targets = [
        ("runs page interactive (first rows shown) < 1 s", fmt(mc["first_rows"], "s", 120),
         check(mc["first_rows"] is not None and mc["first_rows"] < 1)),
        ("sort round trip < 300 ms", fmt(mc["sort"], "s", 120), check(mc["sort"] is not None and mc["sort"] < 0.3)),
        ("filter round trip < 300 ms", fmt(mc["filter"], "s", 120), check(mc["filter"] is not None and mc["filter"] < 0.3)),
        (f"comparison of {COMPARE_RUNS} runs × {COMPARE_STEPS:,} points drawn < 1 s", fmt(mc["compare"], "s", 120),
         check(mc["compare"] is not None and mc["compare"] < 1)),
        ("memory of the page < 300 MB (its renderers' PSS)", fmt(mc["rss"], "MB", 0), check(mc["rss"] is not None and mc["rss"] < 300)),
    ]
    print_targets(console, targets, caption=f"{os.cpu_count()} CPUs; Chromium {CHROMIUM}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": args.runs, "repeats": args.repeats, "results": results, "medians": rows,
                                               "targets": targets}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
