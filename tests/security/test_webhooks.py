"""Alert webhooks against real HTTP servers on 127.0.0.1: never redirected, never stalling the caller, retried, recorded."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelcycle.errors import InvalidInputError
from modelcycle.monitoring import webhook
from modelcycle.monitoring.alerts import AlertRules, deliver, flush, raise_alert
from modelcycle.tracking.client import Client


class Receiver:
    """A real HTTP server on 127.0.0.1 whose answer to each POST is ``answer(n)`` for the n-th request (from 1)."""

    def __init__(self, answer: Callable[[int], tuple[int, dict[str, str]]] = lambda n: (204, {})):
        self.answer = answer
        self.requests: list[tuple[str, str, bytes]] = []  # method, path, body
        self.release = threading.Event()  # lets a hanging answer go at teardown
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.requests.append((self.command, self.path, body))
                    n = len(receiver.requests)
                code, headers = receiver.answer(n)
                if code == 0:  # hang: accept, read, never answer (until the test ends)
                    receiver.release.wait(30)
                    return
                self.send_response(code)
                for k, v in {**headers, "Content-Length": "0"}.items():
                    self.send_header(k, v)
                self.end_headers()

            do_POST = do_GET = do_PUT = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(answer: Callable[[int], tuple[int, dict[str, str]]] = lambda n: (204, {})) -> Receiver:
        made.append(Receiver(answer))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture(autouse=True)
def drained() -> Iterator[None]:
    """No delivery of one test is still running (and writing to its store) in the next."""
    assert flush(60)
    yield
    assert flush(60)


def wait_delivery(client: Client, alert_id: str, states: tuple[str, ...] = ("delivered", "failed"), timeout: float = 60.0) -> dict:
    """Poll the store until the alert's delivery record reaches one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        record = getattr(client.store.alert_get(alert_id), "delivery", None)
        if record is not None and record["state"] in states:
            return record
        assert time.monotonic() < deadline, f"the delivery of {alert_id} is still {record} after {timeout:g} s"
        time.sleep(0.05)


def fire(client: Client, url: str, rule: str = "load_failure") -> dict[str, Any]:
    alert = raise_alert(client.store, "churn", rule, f"{rule} happened", {"version": 3}, AlertRules(webhook=url))
    assert alert is not None
    return alert


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_not_followed(client: Client, receivers, code: int) -> None:
    other = receivers()
    hook = receivers(lambda n: (code, {"Location": f"{other.url}/stolen"}))
    alert = fire(client, f"{hook.url}/alerts")
    record = wait_delivery(client, alert["id"])
    assert record["state"] == "failed" and record["event"] == "firing"
    assert f"the webhook answered {code} (redirect to {other.url}/stolen)" in record["error"]
    assert "does not follow redirects" in record["error"]
    assert record["attempts"] == 1, "a redirect is a wrong URL: trying again cannot help"
    assert [(m, p) for m, p, _ in hook.requests] == [("POST", "/alerts")]
    assert json.loads(hook.requests[0][2])["id"] == alert["id"]
    assert other.requests == [], "the redirect target received nothing"


@pytest.mark.parametrize("target", ["ftp://127.0.0.1:{port}/alerts", "file:///etc/passwd"])
def test_a_redirect_to_another_scheme_fetches_nothing(client: Client, receivers, target: str) -> None:
    with socket.socket() as listener:  # what an ftp:// redirect would connect to
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        listener.setblocking(False)
        location = target.format(port=listener.getsockname()[1])
        hook = receivers(lambda n: (302, {"Location": location}))
        alert = fire(client, f"{hook.url}/alerts")
        record = wait_delivery(client, alert["id"])
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection came
    assert record["state"] == "failed" and f"redirect to {location}" in record["error"]
    assert "root:" not in json.dumps(record)
    assert len(hook.requests) == 1


def test_a_receiver_failing_twice_gets_the_alert_on_the_third_attempt(client: Client, receivers) -> None:
    hook = receivers(lambda n: (500, {}) if n <= 2 else (200, {}))
    alert = fire(client, f"{hook.url}/alerts")
    record = wait_delivery(client, alert["id"])
    assert record == {**record, "state": "delivered", "attempts": 3, "error": None, "event": "firing"}
    assert len(hook.requests) == 3 and len({body for _, _, body in hook.requests}) == 1, "the same alert, three times"


@pytest.mark.slow
def test_a_hanging_receiver_does_not_stall_the_caller_and_the_delivery_fails_after_the_timeouts(client: Client, receivers) -> None:
    hook = receivers(lambda n: (0, {}))  # accepts, reads, never answers
    started = time.monotonic()
    alert = fire(client, f"{hook.url}/alerts")
    took = time.monotonic() - started
    assert took < 2.0, f"raising the alert took {took:.1f} s: it waited for the webhook"
    pending = client.store.alert_get(alert["id"]).delivery
    assert pending["state"] == "pending" and pending["event"] == "firing"
    waited = time.monotonic()
    assert flush(0.5) is False, "flush gives up at its deadline"
    assert time.monotonic() - waited < 3.0
    record = wait_delivery(client, alert["id"])
    assert record["state"] == "failed" and record["attempts"] == 3
    assert f"did not answer within {webhook.TIMEOUT:g} s" in record["error"]
    assert len(hook.requests) == 3
    assert time.monotonic() - started >= 3 * webhook.TIMEOUT, "each attempt waited for its timeout"


def test_an_unreachable_receiver_is_recorded_as_failed(client: Client) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    alert = fire(client, f"http://127.0.0.1:{port}/alerts")
    record = wait_delivery(client, alert["id"])
    assert record["state"] == "failed" and record["attempts"] == 3 and "could not reach the webhook" in record["error"]
    assert "\n" not in record["error"] and len(record["error"]) <= webhook.ERROR_CHARS


@pytest.mark.parametrize("url", ["ftp://x", "file:///etc/passwd", "FILE:///etc/passwd", "gopher://127.0.0.1/", "http://", "http:///path",
                                 "javascript:alert(1)", "127.0.0.1:8000/alerts", "http://127.0.0.1:port/"])
def test_webhooks_other_than_http_and_https_are_refused_when_the_rules_are_built(url: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        AlertRules(webhook=url)
    message = str(refused.value)
    assert message == f"webhook {url!r} must be an http:// or https:// URL with a host, such as https://hooks.example.com/alerts"
    assert "\n" not in message


def test_http_and_https_webhooks_are_accepted() -> None:
    assert AlertRules(webhook="https://hooks.example.com/a?token=1").webhook.startswith("https://")
    assert AlertRules(webhook="HTTP://127.0.0.1:8080/alerts").webhook


def test_the_scheme_is_checked_again_when_sending(client: Client, tmp_path) -> None:
    rules = AlertRules(webhook="http://127.0.0.1:9/", file=str(tmp_path / "alerts.jsonl"))
    object.__setattr__(rules, "webhook", "file:///etc/passwd")  # as if the rules had been built some other way
    alert = {"id": "a" * 32, "model": "churn", "rule": "drift", "window_start": None, "raised_at": time.time(), "message": "m"}
    assert client.store.alert_raise(alert)
    deliver({**alert, "state": "firing"}, rules, client.store)
    record = wait_delivery(client, alert["id"])
    assert record["state"] == "failed" and "must be an http:// or https:// URL" in record["error"] and record["attempts"] == 1
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1, "the file sink is written at once"


def test_the_resolution_is_delivered_after_the_firing_and_is_what_is_recorded(client: Client, receivers) -> None:
    hook = receivers(lambda n: (500, {}) if n == 1 else (204, {}))  # the firing is retried while the resolution waits
    alert = fire(client, f"{hook.url}/alerts", rule="drift")
    resolved_id = client.store.alert_resolve("churn", "drift", time.time())
    deliver({"id": resolved_id, "model": "churn", "rule": "drift", "state": "resolved", "message": "resolved: drift"},
            AlertRules(webhook=f"{hook.url}/alerts"), client.store)
    assert flush(60)
    record = client.store.alert_get(alert["id"]).delivery
    assert record["event"] == "resolved" and record["state"] == "delivered" and record["attempts"] == 1
    assert [json.loads(body)["state"] for _, _, body in hook.requests] == ["firing", "firing", "resolved"]


def test_a_full_queue_drops_the_oldest_waiting_delivery_as_failed(client: Client, receivers, monkeypatch) -> None:
    monkeypatch.setattr(webhook, "QUEUE_SIZE", 2)
    got_first = threading.Event()
    go = threading.Event()

    def answer(n: int) -> tuple[int, dict[str, str]]:
        if n == 1:  # hold the worker on the first delivery until the queue has overflowed
            got_first.set()
            go.wait(30)
        return 204, {}

    hook = receivers(answer)
    first = fire(client, f"{hook.url}/alerts", rule="r0")
    assert got_first.wait(30)
    waiting = [fire(client, f"{hook.url}/alerts", rule=f"r{i}") for i in (1, 2, 3)]
    dropped = client.store.alert_get(waiting[0]["id"]).delivery
    assert dropped["state"] == "failed" and dropped["error"].startswith("queue full") and dropped["attempts"] == 0
    go.set()
    assert flush(60)
    assert [client.store.alert_get(a["id"]).delivery["state"] for a in (first, *waiting)] == ["delivered", "failed", "delivered", "delivered"]
    assert sorted(json.loads(body)["rule"] for _, _, body in hook.requests) == ["r0", "r2", "r3"]


def test_the_store_keeps_the_latest_events_delivery(any_client: Client) -> None:
    store = any_client.store
    alert = {"id": "b" * 32, "model": "churn", "rule": "drift", "window_start": None, "raised_at": 1.0, "message": "m"}
    assert store.alert_raise(alert)
    assert store.alert_get(alert["id"]).delivery is None
    assert store.alert_delivery(alert["id"], {"event": "firing", "state": "pending", "attempts": 0, "error": None, "at": 2.0})
    assert store.alert_delivery(alert["id"], {"event": "resolved", "state": "pending", "attempts": 0, "error": None, "at": 3.0})
    assert not store.alert_delivery(alert["id"], {"event": "firing", "state": "delivered", "attempts": 2, "error": None, "at": 4.0})
    assert store.alert_delivery(alert["id"], {"event": "resolved", "state": "failed", "attempts": 3, "error": "x", "at": 5.0})
    assert store.alert_get(alert["id"]).delivery == {"event": "resolved", "state": "failed", "attempts": 3, "error": "x", "at": 5.0}
    assert store.alert_list("churn")[0].delivery["state"] == "failed"
    assert not store.alert_delivery("c" * 32, {"event": "firing", "state": "pending"}), "no such alert"



@pytest.mark.slow
def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_timeout(client: Client) -> None:
    """One byte every second keeps each read under its socket timeout forever: the whole POST has a deadline."""
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]

    def serve() -> None:
        while not stop.is_set():
            try:
                server.settimeout(0.5)
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    def trickle(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(1.0):
                conn.sendall(b"X")
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        started = time.monotonic()
        alert = fire(client, f"http://127.0.0.1:{port}/alerts")
        record = wait_delivery(client, alert["id"])
        assert record["state"] == "failed" and record["attempts"] == 3
        assert f"did not answer within {webhook.TIMEOUT:g} s" in record["error"]
        assert time.monotonic() - started < 3 * (webhook.TIMEOUT + 2) + sum(webhook.BACKOFF) + 10
    finally:
        stop.set()
        server.close()
