"""The web UI in real Chromium (Debian's, driven by playwright), against a real server on 127.0.0.1: every page loads,
a filter narrows the table, a comparison draws, promotion and rollback from the UI are recorded with the user, and
strings holding script never run. Screenshots go to test-artifacts/ui/."""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from modelcycle.entities import Cycle, CycleState
from modelcycle.pipelines import pipeline, step
from modelcycle.server.app import UI_DIR, create_app
from modelcycle.settings import Settings
from modelcycle.store.metadata.base import NewRun, WriteBatch
from tests.conftest import running

CHROMIUM = "/usr/bin/chromium"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc0000003"
                    "010100c9fe92ef0000000049454e44ae426082")  # a 1×1 red image
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
PWN = "window.__pwned=1"
# each is a run name, a param value, a tag, a metric key, an experiment name or an artifact name somewhere below
XSS = [f"<img src=x onerror={PWN}>", f"<script>{PWN}</script>", f'"><svg onload={PWN}>', f"javascript:{PWN}",
       f"<iframe src=javascript:{PWN}>", "'-alert(1)-'", f"{{{{constructor.constructor('{PWN}')()}}}}",
       f"<a href=javascript:{PWN}>x</a>", f"<details open ontoggle={PWN}>"]

@step
def ui_rows(n: int) -> list:
    print(f"making {n} rows")
    return list(range(n))


@step
def ui_total(rows: list, scale: float = 1.0) -> float:
    print(f"<b>scaling</b> {len(rows)} rows")
    return sum(rows) * scale


@pipeline
def ui_training(n: int = 10, scale: float = 1.0):
    return ui_total(ui_rows(n), scale=scale)


pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (.ci/run installs Debian's)"),
              pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert (UI_DIR / "index.html").is_file(), "the web UI is not built: `make ui` builds it (make test does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-background-networking",
                                                              "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def _seed(settings: Settings) -> dict[str, Any]:
    """Runs of two experiments (one named with script), metric histories, artifacts of each kind, a parent with
    trials, and a model with two versions (a passed verdict on the second); users ana (manager) and rita (reader)."""
    import modelcycle as mc
    from modelcycle.store import open_metadata_store

    client = mc.Client(settings)
    ids = []
    for i in range(40):
        name = XSS[i % len(XSS)] if i % 5 == 0 else f"trial-{i}"
        with client.start_run(experiment="churn", name=name) as run:
            client.log_params({"lr": 0.001 * (i + 1), "model": "rf" if i % 2 else "lr", "note": XSS[i % len(XSS)]})
            client.set_tags({"team": "risk" if i % 3 else XSS[0]})
            for step in range(20):
                client.log_metric("loss", 1 / (step + 1) + i / 100, step=step)
            client.log_metric("auc", 0.5 + i / 100)
            ids.append(run.id)
    with client.start_run(experiment="reports", name="odd experiment") as run:
        client.log_metric("auc", 0.1)
        client.log_text("plain words\n" + XSS[0], "notes.txt")
        client.log_text(f"<html><body><h1>report</h1><script>parent.{PWN};{PWN}</script><img src=x onerror={PWN}></body></html>",
                        "report.html")
        client.log_text("a,b\n1,<img src=x onerror=window.__pwned=1>\n2,3\n", "table.csv")
        client.log_text("x", f"{XSS[3]}.txt")
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = pa.table({"tenure": [1, 2, 3], XSS[0]: ["a", XSS[1], "c"], "big": pa.array([2**60 + 1, 1, 2], pa.int64())})
        for name, codec in (("rows.parquet", "snappy"), ("zstd.parquet", "zstd")):
            pq.write_table(rows, settings.home / name, compression=codec)
            client.log_artifact(settings.home / name, name)
        (settings.home / "broken.parquet").write_bytes(b"PAR1" + b"\x15" * 64 + b"PAR1")
        client.log_artifact(settings.home / "broken.parquet", "broken.parquet")
        client.log_artifact(_lying_parquet(settings.home / "lie.parquet"), "lie.parquet")
        for made in sorted((Path(__file__).parent / "data").glob("*.parquet")):  # hand-made hostile files, ~120 bytes
            client.log_artifact(made, f"hostile/{made.name}")
        client.log_text("diff --git a/train.py b/train.py\n+C = 2.0\n", "modelcycle/code.diff")  # as capture stores it
        png = settings.home / "dot.png"
        png.write_bytes(PNG)
        client.log_artifact(png, "plots/dot.png")
        import pandas as pd

        client.log_dataset(pd.DataFrame({"tenure": [1, 2, 3], "plan": ["a", "b", XSS[0]]}), name="train")
        artifacts_run = run.id
    with client.start_run(experiment="churn", name="tuning") as parent:
        for t in range(3):
            with client.start_run(experiment="churn", name=f"child-{t}", parent=parent):
                client.log_params({"depth": t + 2})
                client.log_metric("auc", 0.7 + t / 10)
    ui_training.run(n=10, client=client)
    piped = ui_training.run(n=10, scale=2.0, client=client)  # the first step from the cache, the second re-ran
    client.close()
    store = open_metadata_store(settings.store_uri)
    now = time.time()
    # what a hostile client could write past the Python client's key checks: keys and an experiment named with script
    hostile = uuid.uuid4().hex
    store.write(WriteBatch(runs=[NewRun(id=hostile, experiment_id=store.get_or_create_experiment(XSS[2]).id, name=XSS[6],
                                        start_time=now, params={XSS[0]: XSS[4], "lr": "1", "__proto__": "p1", "constructor": "c1"},
                                        tags={XSS[7]: XSS[8]})],
                           metrics=[(hostile, XSS[1], 1.0, 0, now), (hostile, "auc", 0.2, 0, now)]))
    for v in (1, 2):
        store.create_model_version("churn", run_id=ids[v], source=f"runs:/{ids[v]}/model", artifact_path="model",
                                   hash=f"{v}" * 64, flavour="sklearn", created_at=now, created_by="setup", description=None, tags={})
    store.move_alias("churn", "champion", 1, action="set", actor="setup", at=now)
    store.save_verdict(uuid.uuid4().hex, "churn", 2, True, now, ids[2],
                       {"rules": [{"rule": "min_metric", "passed": True, "expected": ">= 0.5", "candidate": 0.52, "baseline": None,
                                   "detail": XSS[0]}], "policy": {}, "rows": 100, "baseline_alias": None, "baseline_version": None})
    many = store.get_or_create_experiment("many").id  # more runs than the table loads at first; the oldest is different
    store.write(WriteBatch(runs=[NewRun(id=uuid.uuid4().hex, experiment_id=many, name=f"m{i}", start_time=now - 1000 + i,
                                        params={"rare_param": "7"} if i == 0 else {"i": str(i)}) for i in range(250)]))
    minute = 60.0 * (now // 60)

    def summary(i: int) -> dict[str, Any]:
        columns = {"tenure": {"statistic": 0.3, "threshold": 0.1, "method": "ks", "drifted": i > 5},
                   XSS[0]: {"statistic": 0.01, "threshold": 0.1, "method": "chi2", "drifted": False}}
        return {"rows": 100 + i, "latency_ms": {"p50": 2.0, "p99": 9.0 + i}, "performance": {"labelled": 50, "metrics": {"roc_auc": 0.8 - i / 100}},
                "drift": {"share": 0.5 if i > 5 else 0.0, "drifted_columns": ["tenure"] if i > 5 else [], "columns": columns}}

    store.window_put("churn", "champion", 60, [{"start": minute - 60 * (10 - i), "rows": 100 + i, "sources": "s", "profile": None,
                                                "summary": summary(i), "computed_at": now} for i in range(10)])
    store.alert_raise({"id": "alert-ui", "model": "churn", "rule": "drift", "raised_at": now - 100, "message": f"input drift {XSS[4]}"})
    event = store.move_alias("churn", "champion", 2, action="promote", actor="agent", at=now - 50)
    store.move_alias("churn", "champion", 1, action="set", actor="setup", at=now - 40)
    store.cycle_claim_new(Cycle(id="cycle-ui", project="churn", trigger="drift", trigger_key="k", state=CycleState.TRAINING,
                                started_at=now - 90, updated_at=now - 90, alert_id="alert-ui"))
    store.cycle_update("cycle-ui", state=CycleState.DONE, run_id=piped.run_id, model="churn", version=2, alias_event_id=event.id,
                       updated_at=now - 50)
    tokens = {}
    for user, role in (("ana", "manage"), ("rita", "read")):
        token = f"mc_{user}_{uuid.uuid4().hex}"
        store.user_add(user, False, hashlib.sha256(token.encode()).hexdigest())
        for kind in ("experiment", "model"):
            store.user_grant(user, kind, "*", role)
        tokens[user] = token
    store.close()
    return {"runs": ids, "parent": parent.id, "artifacts_run": artifacts_run, "tokens": tokens, "hostile": hostile,
            "pipeline": piped.run_id}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any], Settings]]:
    settings = Settings.for_home(tmp_path_factory.mktemp("ui") / "home", capture=False)
    seeded = _seed(settings)
    with running(create_app(settings)) as url:
        yield url, seeded, settings


class Watched:
    """A page with everything that would show a failure: script errors, console errors, dialogs, and the XSS flag."""

    def __init__(self, browser: Any, url: str, token: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        # the top page only: a sandboxed frame (an HTML report) may not touch storage
        if token:
            self.context.add_init_script(f"if (window === window.top) sessionStorage.setItem('modelcycle.token', {json.dumps(token)})")
        self.page = self.context.new_page()
        self.url = url
        self.problems: list[str] = []
        self.blocked: list[str] = []  # scripts the browser refused to run (a report's, in its sandboxed frame)
        self.page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        self.page.on("console", self._console)
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def _console(self, m: Any) -> None:
        if m.type != "error" or "400 (Bad Request)" in m.text:
            return
        (self.blocked if m.text.startswith("Blocked script execution in 'blob:") else self.problems).append(m.text)

    def goto(self, route: str) -> Any:
        self.page.goto(f"{self.url}/{route}")
        return self.page

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def check(self) -> None:
        assert self.page.evaluate("window.__pwned") is None, "a payload ran"
        assert self.page.locator("img[src=x], svg[onload], iframe[src^=javascript], details[ontoggle]").count() == 0
        assert self.problems == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def ana(browser: Any, site: Any) -> Iterator[Watched]:
    url, seeded, _ = site
    w = Watched(browser, url, seeded["tokens"]["ana"])
    yield w
    w.check()
    w.close()


# Waits are on locators (the page's own policy forbids the eval that wait_for_function would need).
def _count(page: Any) -> int:
    expect(page.locator("[data-testid=count]")).to_have_text(re.compile(r"^[0-9,]+ runs$"), timeout=30_000)
    return int(page.inner_text("[data-testid=count]").split()[0].replace(",", ""))


def _first_name(page: Any) -> Any:
    return page.locator(".tr[data-index='0'] .cell:nth-child(2)")


def _lying_parquet(path: Path) -> Path:
    """A 0.5 MB snappy Parquet file whose one 8 MB page says, in its header, that it holds 100 MB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"zeros": pa.array([0] * 1_500_000, pa.int64())}), path, compression="snappy",
                   use_dictionary=False, write_statistics=False, data_page_size=64 << 20, max_rows_per_page=2_000_000,
                   write_batch_size=2_000_000)
    data = bytearray(path.read_bytes())
    at = pq.ParquetFile(path).metadata.row_group(0).column(0).data_page_offset + 3  # after: type DATA_PAGE, field 2
    assert data[at - 3:at] == b"\x15\x00\x15"  # compact thrift: field 1 (i32) = 0, field 2 (i32) = the varint here
    end = at
    while data[end] & 0x80:
        end += 1
    claim, n = bytearray(), 2 * 100_000_000  # zigzag, 100 MB: the same four bytes as the true 8 MB
    while True:
        claim.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            break
    assert len(claim) == end + 1 - at
    data[at:end + 1] = claim
    path.write_bytes(bytes(data))
    return path


def test_the_runs_page_shows_every_run_and_a_filter_narrows_it(ana: Watched, site: Any) -> None:
    page = ana.goto("#/runs")
    assert _count(page) == 302  # 40, the tuning parent and its 3 trials, the reports run, the hostile run, 2 pipelines × 3, 250 many
    page.wait_for_selector(".tr .cell a")
    ana.shot("runs")
    page.fill("input[name=filter]", "metrics.auc >= 0.8 and params.model = 'rf'")
    page.press("input[name=filter]", "Enter")
    expect(page.locator("[data-testid=count]")).to_have_text("5 runs", timeout=30_000)
    names = page.locator(".tr .cell:nth-child(2)").all_inner_texts()
    assert sorted(names) == sorted([*(f"trial-{i}" for i in (31, 33, 37, 39)), XSS[35 % len(XSS)]])  # shown as text
    assert "filter=" in page.url  # the filter is in the address: a view can be shared
    page.select_option("select[aria-label='group by']", "params.model")
    expect(page).to_have_url(re.compile(r"group=params\.model"))
    expect(page.locator(".group-label")).to_have_text(["rf"], timeout=30_000)  # one group: all five are rf
    ana.shot("runs-filtered")


def test_a_filter_that_cannot_be_read_shows_where_inline(ana: Watched) -> None:
    page = ana.goto("#/runs")
    _count(page)
    page.fill("input[name=filter]", "metrics.auc > and params.model = 'rf'")
    page.press("input[name=filter]", "Enter")
    error = page.wait_for_selector(".filter-error", timeout=30_000)
    assert "position 14" in error.inner_text()
    assert page.inner_text(".filter-error mark").startswith("and params")  # the rest of the filter, from the fault
    ana.shot("filter-error")


def test_keys_complete_in_the_filter(ana: Watched) -> None:
    page = ana.goto("#/runs")
    _count(page)
    page.wait_for_selector(".tr .cell a")
    page.click("input[name=filter]")
    page.keyboard.type("metrics.lo")
    page.wait_for_selector(".hints li")
    assert page.locator(".hints li").all_inner_texts() == ["metrics.loss"]
    page.keyboard.press("Tab")
    assert page.input_value("input[name=filter]") == "metrics.loss "


def test_keys_of_runs_not_loaded_yet_complete_too(ana: Watched) -> None:
    page = ana.goto("#/runs?experiment=many")
    assert _count(page) == 250
    page.click("input[name=filter]")
    page.keyboard.type("params.ra")
    expect(page.locator(".hints li")).to_have_text(["params.rare_param"], timeout=30_000)


def test_sorting_by_a_metric_is_the_servers_order_over_every_run(ana: Watched) -> None:
    page = ana.goto("#/runs?experiment=churn")
    assert _count(page) == 44
    page.click(".thead .cell[title='metrics.auc']")
    expect(page).to_have_url(re.compile(r"order=metrics\.auc\+DESC"))
    expect(_first_name(page)).to_have_text("child-2", timeout=30_000)  # auc 0.9, above trial-39's 0.89
    page.click(".thead .cell[title='metrics.auc']")
    expect(page).to_have_url(re.compile(r"order=metrics\.auc\+ASC"))
    expect(_first_name(page)).to_have_text(XSS[0], timeout=30_000)  # run 0: the lowest auc, named with a payload


def test_a_run_shows_its_records_history_artifacts_and_children(ana: Watched, site: Any) -> None:
    _, seeded, _ = site
    page = ana.goto(f"#/run/{seeded['runs'][7]}")
    page.wait_for_selector("[data-testid=params]")
    assert "0.008" in page.inner_text("[data-testid=params]")
    page.click("[data-testid=metrics] tr:has-text('loss')")
    page.wait_for_selector("[data-testid=chart] canvas")
    assert "modelcycle runs reproduce" in page.inner_text("main")
    ana.shot("run")
    page = ana.goto(f"#/run/{seeded['artifacts_run']}")
    page.wait_for_selector("[data-testid=artifacts]")
    for name, shown in (("notes.txt", "pre.preview"), ("table.csv", "table.grid td"), ("report.html", "iframe.preview")):
        page.click(f"[data-testid=artifacts] button:text-is('{name}')")
        page.wait_for_selector(shown, timeout=30_000)
    assert page.get_attribute("iframe.preview", "sandbox") == ""  # the report's scripts do not run:
    expect(page.locator("iframe.preview")).to_be_visible()
    deadline = time.monotonic() + 30
    while not ana.blocked and time.monotonic() < deadline:  # Chromium says it refused them
        page.wait_for_timeout(100)
    assert ana.blocked
    page.click(f"[data-testid=artifacts] button:text-is('{XSS[3]}.txt')")
    page.wait_for_selector("pre.preview")
    page.click("[data-testid=artifacts] button:text-is('rows.parquet')")  # a table read in the page, int64 exact
    expect(page.locator(".artifact-view table.grid")).to_contain_text(str(2**60 + 1), timeout=30_000)
    assert XSS[1] in page.inner_text(".artifact-view table.grid")
    assert page.locator(".artifact-view table.grid th").nth(1).inner_text() == XSS[0]
    page.click("[data-testid=artifacts] button:text-is('zstd.parquet')")
    expect(page.locator(".artifact-view")).to_contain_text("no preview: its pages are compressed with ZSTD", timeout=30_000)
    page.click("[data-testid=artifacts] button:text-is('broken.parquet')")
    expect(page.locator(".artifact-view")).to_contain_text("no preview:", timeout=30_000)
    page.click("[data-testid=artifacts] button:text-is('lie.parquet')")  # refused before 100 MB is allocated
    expect(page.locator(".artifact-view")).to_contain_text("no preview: its pages would expand past 64 MB", timeout=30_000)
    for name, said in (("dlba_bomb_100000000", "no preview: a page says it holds 100,000,000 values"),
                       ("rle_bomb_2147483647", "a1"), ("dict_idx_bomb_2147483647", "ax"),
                       ("dup_names", 'no preview: two of its columns are named "a"')):
        # 100 bytes that say they hold 100,000,000 values; runs of 2**31 values in pages of 3 (cut at the page's
        # end: the page's own 3 values are shown); two columns named a
        page.click(f"[data-testid=artifacts] button:text-is('hostile/{name}.parquet')")
        expect(page.locator(".artifact-view")).to_contain_text(said, timeout=30_000)
    assert page.evaluate("performance.memory.usedJSHeapSize") < 300e6
    page.click("[data-testid=artifacts] button:text-is('hostile/proto.parquet')")
    expect(page.locator(".artifact-view table.grid")).to_contain_text("__proto__-v1", timeout=30_000)
    assert page.locator(".artifact-view table.grid th").first.inner_text() == "__proto__"
    page.click("[data-testid=artifacts] button:text-is('plots/dot.png')")
    expect(page.locator("img.preview")).to_have_attribute("src", re.compile(r"^blob:"), timeout=30_000)
    assert page.evaluate("document.querySelector('img.preview').naturalWidth") == 1  # the image itself, decoded
    assert "train" in page.inner_text("[data-testid=datasets]") and "tenure: int" in page.inner_text("[data-testid=datasets]")
    page.click("button:has-text('show the diff')")
    expect(page.locator("pre.preview")).to_contain_text("+C = 2.0", timeout=30_000)
    page.click("[data-testid=datasets] button:text-is('profile')")
    expect(page.frame_locator("[data-testid=profile]").locator("body")).to_contain_text("tenure", timeout=30_000)
    ana.shot("run-artifacts")
    page = ana.goto(f"#/run/{seeded['parent']}")
    page.wait_for_selector("[data-testid=children]")
    assert page.locator("[data-testid=children] tbody tr").count() == 3


def test_keys_named_like_what_every_object_inherits_are_shown_as_keys(ana: Watched, site: Any) -> None:
    _, seeded, _ = site
    page = ana.goto(f"#/run/{seeded['hostile']}")
    page.wait_for_selector("[data-testid=params]")
    rows = dict(zip(page.locator("[data-testid=params] th").all_inner_texts(),
                    page.locator("[data-testid=params] td").all_inner_texts(), strict=True))
    assert rows["__proto__"] == "p1" and rows["constructor"] == "c1" and rows["lr"] == "1"


def test_a_comparison_draws_the_runs_it_can_and_says_what_it_left_out(ana: Watched, site: Any) -> None:
    _, seeded, _ = site
    a, b = seeded["runs"][1], seeded["runs"][2]
    ids = [a, b.upper(), "not-a-run", "f" * 32, a]  # upper-case, not an id, a run that does not exist, twice the same
    page = ana.goto(f"#/compare?ids={','.join(ids)}&metric=loss")
    expect(page.locator("[data-testid=chart] .u-legend .u-series")).to_have_count(3, timeout=30_000)  # steps, 2 runs
    text = page.inner_text("main")
    assert "Compare 2 runs" in text and "1 id in the address is not a run id and was left out" in text
    assert "runs not found (or that you may not read): 1" in text
    page = ana.goto("#/compare?ids=nothing,useful")
    expect(page.locator("main")).to_contain_text("None of the ids in this address is a run id", timeout=30_000)


def test_a_comparison_marks_differences_and_draws_histories(ana: Watched) -> None:
    page = ana.goto("#/runs?experiment=churn&filter=params.model%20%3D%20'rf'")
    _count(page)
    page.wait_for_selector(".tr .cell a")
    for i in range(3):
        page.check(f".tr[data-index='{i}'] input[type=checkbox]")
    page.click("a.button:has-text('Compare 3')")
    page.wait_for_selector("[data-testid=compare-params]")
    differs = page.locator("[data-testid=compare-params] tr.differs th").all_inner_texts()
    assert "lr" in differs
    page.select_option("select[aria-label=metric]", "loss")
    page.wait_for_selector("[data-testid=chart] canvas", timeout=30_000)
    expect(page.locator("[data-testid=chart] .u-legend .u-series")).to_have_count(4, timeout=30_000)  # steps, 3 runs
    assert "metric=loss" in page.evaluate("location.hash")  # the view is a link: opened again, it draws loss at once
    page.reload()
    expect(page.locator("[data-testid=chart] .u-legend .u-series")).to_have_count(4, timeout=30_000)
    assert page.input_value("select[aria-label=metric]") == "loss"
    page.wait_for_selector("[data-testid=scatter] canvas")
    page.wait_for_selector("[data-testid=parallel] canvas", timeout=30_000)  # params lr and a metric, one line per run
    ana.shot("compare")


def test_a_pipeline_shows_its_steps_why_they_ran_and_their_logs(ana: Watched, site: Any) -> None:
    _, seeded, _ = site
    page = ana.goto("#/pipelines")
    page.click(f"[data-testid=pipelines] a[href='#/pipeline/{seeded['pipeline']}']")
    expect(page.locator("[data-testid=dag] text:has-text('cache hit')")).to_have_count(1, timeout=30_000)
    page.click("[data-testid=dag] g[data-step=ui_total]")
    expect(page.locator("[data-testid=why]")).to_have_text("parameter 'scale' changed (1.0 → 2.0)", timeout=30_000)
    expect(page.locator("[data-testid=step-logs]")).to_contain_text("<b>scaling</b> 10 rows", timeout=30_000)  # as text
    page.click("[data-testid=dag] g[data-step=ui_rows]")
    expect(page.locator("[data-testid=why]")).to_contain_text("same source, inputs and parameters as run")
    ana.shot("pipeline")


def test_production_draws_windows_alerts_and_the_lineage_of_a_cycle(ana: Watched, site: Any) -> None:
    _, seeded, _ = site
    page = ana.goto("#/production")
    page.click("[data-testid=production-models] a:text-is('churn')")
    expect(page.locator("[data-testid=windows]")).to_contain_text("10 windows of 60 s", timeout=30_000)
    assert page.locator("[data-testid=time-chart] canvas").count() >= 6  # traffic, latency, drift, prediction, metrics, labels
    assert page.locator("[data-testid=drift-columns] tr.differs").all_inner_texts()[0].startswith("tenure")
    assert XSS[4] in page.inner_text("[data-testid=alerts]")
    lineage = page.inner_text("[data-testid=lineage]")
    assert "alert alert-ui" in lineage and seeded["pipeline"][:8] in lineage and "churn/2" in lineage and "1 → 2 by agent" in lineage
    ana.shot("production")


def test_promotion_and_rollback_from_the_ui_are_recorded_with_the_user(ana: Watched, site: Any) -> None:
    _, _, settings = site
    from modelcycle.store import open_metadata_store

    page = ana.goto("#/models")
    page.click("[data-testid=models] a:text-is('churn')")
    page.wait_for_selector("[data-testid=versions]")
    page.click("[data-testid=versions] button:text-is('passed')")
    page.wait_for_selector("[data-testid=verdict]")
    ana.shot("model")
    row = page.locator("[data-testid=versions] tbody tr").filter(has=page.locator("td:first-child", has_text="2")).first
    row.locator("input[aria-label=reason]").fill("better auc")
    row.locator("button:text-is('Promote')").click()
    row.locator("button:text-is('Confirm: version 2 becomes champion')").click()  # a second click moves the alias
    page.wait_for_selector("[data-testid=aliases] td:text-is('version 2')", timeout=30_000)
    page.click("[data-testid=aliases] button:text-is('Roll back champion')")
    page.click("[data-testid=aliases] button:text-is('cancel')")  # changed their mind: nothing moves
    page.click("[data-testid=aliases] button:text-is('Roll back champion')")
    page.click("[data-testid=aliases] button:text-is('Confirm: move champion back')")
    page.wait_for_selector("[data-testid=aliases] td:text-is('version 1')", timeout=30_000)
    assert "ana" in page.inner_text("[data-testid=history]")
    ana.shot("model-after")
    store = open_metadata_store(settings.store_uri)
    try:
        events = store.alias_events("churn", "champion")
    finally:
        store.close()
    assert [(e.action, e.actor, e.to_version) for e in events[-2:]] == [("promote", "ana", 2), ("rollback", "ana", 1)]
    assert events[-2].reason == "better auc" and not events[-2].forced


def test_a_reader_is_offered_no_promotion_and_told_why(browser: Any, site: Any) -> None:
    """The buttons show only to who may use them (the server refuses the others anyway: tests/server/test_ui_api.py)."""
    url, seeded, _ = site
    w = Watched(browser, url, seeded["tokens"]["rita"])
    try:
        page = w.goto("#/models/churn")
        page.wait_for_selector("[data-testid=versions]")
        expect(page.locator("[data-testid=no-manage]")).to_contain_text("needs the manage role on it; rita has read")
        assert page.locator("button:text-is('Promote')").count() == 0 and page.locator("button:has-text('Roll back')").count() == 0
        expect(page.locator("[data-testid=who]")).to_have_text("rita")
        w.check()
    finally:
        w.close()


def test_without_a_token_the_ui_asks_for_one(browser: Any, site: Any) -> None:
    url, seeded, _ = site
    w = Watched(browser, url, "")
    try:
        page = w.goto("#/runs")
        page.wait_for_selector("form.token", timeout=30_000)
        page.fill("form.token input", seeded["tokens"]["rita"])
        page.click("form.token button")
        assert _count(page) == 302
        w.problems = [p for p in w.problems if "401" not in p]
        w.check()
    finally:
        w.close()


def test_the_xss_corpus_runs_nowhere(ana: Watched, site: Any) -> None:
    """Every page that shows the corpus, with a group-by over a tag that holds it and every column shown."""
    _, seeded, _ = site
    for route in ("#/runs", "#/runs?group=tags.team", "#/production/churn", f"#/pipeline/{seeded['pipeline']}",
                  "#/pipelines", f"#/run/{seeded['runs'][0]}", f"#/run/{seeded['hostile']}",
                  f"#/compare?ids={seeded['hostile']},{seeded['runs'][0]}", f"#/run/{seeded['artifacts_run']}",
                  f"#/compare?ids={','.join(seeded['runs'][:10])}", "#/models", "#/models/churn"):
        page = ana.goto(route)
        page.wait_for_selector("main section, main .error", timeout=30_000)
        page.wait_for_load_state("networkidle")
        ana.check()
    page = ana.goto(f"#/run/{seeded['artifacts_run']}")
    page.wait_for_selector("[data-testid=artifacts]")
    for name in ("report.html", "table.csv", "notes.txt", "rows.parquet"):
        page.click(f"[data-testid=artifacts] button:text-is('{name}')")
        page.wait_for_timeout(300)  # a payload that ran would have set the flag by now; check() reads it
        ana.check()
    page = ana.goto("#/runs")
    page.wait_for_selector(".tr .cell a")
    page.click("details.columns summary")
    unchecked = page.locator(".column-list input[type=checkbox]:not(:checked)")
    for _ in range(100):  # each check re-renders the list: take the first unchecked one again
        if unchecked.count() == 0:
            break
        unchecked.first.check()
    assert unchecked.count() == 0
    page.wait_for_timeout(300)
    ana.shot("xss")


def test_pages_are_served_with_a_policy_that_runs_no_inline_script(site: Any) -> None:
    url, _, _ = site
    with urllib.request.urlopen(url + "/") as r:
        csp = r.headers["Content-Security-Policy"]
        html = r.read().decode()
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "'self'"] and "frame-ancestors 'none'" in csp
    assert "<script>" not in html and "<script type=\"module\" crossorigin src=\"/assets/" in html
    for path in ("/assets/..%2f..%2fapp.py", "/assets/../app.py", "/assets/%2e%2e", "/assets/x/../../index.html", "/index.html"):
        try:
            with urllib.request.urlopen(url + path) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        assert status in (401, 404), path  # never served: outside the UI's names it is an API path, which needs a token
    req = urllib.request.Request(url + "/api/v1/store/list_experiments", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:  # the pages are open; the records still need a token
        urllib.request.urlopen(req)
    assert e.value.code == 401


def test_a_run_that_stops_answering_shows_as_lost_without_a_reload(ana: Watched, site: Any) -> None:
    """The table asks again every few seconds, and the server marks runs without a heartbeat LOST: a run whose process
    died turns LOST in front of the user, with no Python client anywhere calling for it."""
    _, _, settings = site
    from modelcycle.store import open_metadata_store

    store = open_metadata_store(settings.store_uri)
    run = uuid.uuid4().hex
    try:
        store.write(WriteBatch(runs=[NewRun(id=run, experiment_id=store.get_or_create_experiment("live").id, name="doomed",
                                            start_time=time.time())]))
        page = ana.goto("#/runs?experiment=live")
        status = page.locator(".tr[data-index='0'] .status")
        expect(status).to_have_text("RUNNING", timeout=30_000)
        store.heartbeat([run], time.time() - 3600)  # its process stopped an hour ago; nobody but the server looks
        expect(status).to_have_text("LOST", timeout=60_000)
    finally:
        store.close()


def test_the_ui_is_small_and_says_when_it_was_not_built(site: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import gzip

    html = (UI_DIR / "index.html").read_text()
    entry = re.findall(r'src="/assets/([^"]+\.js)"', html)
    assert len(entry) == 1 and len(gzip.compress((UI_DIR / "assets" / entry[0]).read_bytes())) < 30_000  # the README
    import modelcycle.server.app as app_module

    monkeypatch.setattr(app_module, "UI_DIR", tmp_path / "nothing")
    with running(create_app(Settings.for_home(tmp_path / "h", capture=False))) as url, urllib.request.urlopen(url + "/") as r:
        assert "make ui" in r.read().decode() and r.headers["Content-Security-Policy"]


def test_modelcycle_ui_serves_the_local_records_or_opens_the_team_server(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MODELCYCLE_HOME": str(tmp_path / "home"), "BROWSER": "true"}
    env.pop("MODELCYCLE_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "modelcycle", "ui", "--no-browser", "--json", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert info["url"] == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(info["url"] + "/", timeout=30) as r:
            assert '<div id="app">' in r.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    team = subprocess.run([sys.executable, "-m", "modelcycle", "ui", "--no-browser"], capture_output=True, text=True, timeout=120,
                          env={**env, "MODELCYCLE_TRACKING_URI": "http://team.example:5000"})
    assert team.returncode == 0 and "http://team.example:5000" in team.stderr
