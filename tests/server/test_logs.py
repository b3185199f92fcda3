"""The prediction log and the labels through the team server: a replica, a laptop and the agent that know only the URL
and a token read and write one log, kept in the server's artifact store; who may read or write a model's log is
decided by the same roles as the rest."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelcycle.errors import ModelcycleError, PermissionDeniedError
from modelcycle.serving.predlog import PredictionLog
from modelcycle.store.predictions import (
    append_labels,
    list_files,
    log_root,
    logged_models,
    parquet_bytes,
    read_labelled,
    read_labels,
    read_log,
)
from tests.server.conftest import _request


def _rows(model: str, n: int, start: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"request_id": [uuid.uuid4().hex for _ in range(n)], "row": 0,
                         "time": pd.to_datetime(start + np.arange(n), unit="s", utc=True), "model": model, "version": 1,
                         "role": "champion", "latency_ms": 1.0, "input.a": rng.normal(size=n), "prediction": rng.integers(0, 2, n)})


def _publish(root: Any, model: str, frame: pd.DataFrame) -> None:
    log = PredictionLog(root, flush_interval=0.05, spool=Path(os.environ.get("TMPDIR", "/tmp")) / f"spool-{uuid.uuid4().hex}")
    try:
        log.add(frame)
        log.flush(timeout=60)
        deadline = time.monotonic() + 60
        while log.spool_bytes and time.monotonic() < deadline:
            log.ship(force=True)
    finally:
        log.close()


def test_a_replica_that_knows_only_the_url_logs_and_a_laptop_labels_and_reads(team: Any) -> None:
    url, tokens, _, settings = team
    writer = log_root(url, tokens["writer"])
    frame = _rows("churn", 30, time.time() - 60)
    _publish(writer, "churn", frame)
    laptop = log_root(url, tokens["reader"])
    seen = read_log(laptop, "churn")
    assert sorted(seen["request_id"]) == sorted(frame["request_id"])
    assert logged_models(laptop) == ["churn"]
    # the files are in the server's own artifact folder, nowhere else
    kept = list(Path(settings.artifact_uri).rglob("*.parquet"))
    assert kept and all("predictions/model=churn/date=" in k.as_posix() for k in kept)
    # labels from another machine, for ids a replica answered; read back from anywhere
    assert append_labels(writer, "churn", list(frame["request_id"][:10]), [1] * 10) == 10
    assert len(read_labels(laptop, "churn")) == 10
    table = read_labelled(laptop, "churn", None, None, target="churned")
    assert len(table) == 10 and set(table["churned"]) == {1}


def test_the_log_is_read_and_written_by_role(team: Any) -> None:
    url, tokens, _, _ = team
    frame = _rows("churn", 5, time.time() - 30)
    _publish(log_root(url, tokens["writer"]), "churn", frame)
    ids = list(frame["request_id"])
    with pytest.raises(PermissionDeniedError):
        append_labels(log_root(url, tokens["reader"]), "churn", ids[:1], [1])
    with pytest.raises(PermissionDeniedError):  # labels for every model need write on every model
        append_labels(log_root(url, tokens["writer"]), None, ids[:1], [1])
    with pytest.raises(PermissionDeniedError):
        read_log(log_root(url, tokens["outsider"]), "churn")
    assert logged_models(log_root(url, tokens["outsider"])) == []  # the listing shows only what the user may read
    with pytest.raises(ModelcycleError, match=r"refused|token"):
        read_log(log_root(url, tokens["revoked"]), "churn")
    with pytest.raises(ModelcycleError, match="token"):
        read_log(log_root(url, "mc_not-a-token"), "churn")
    assert append_labels(log_root(url, tokens["admin"]), None, ids[:2], [0, 1]) == 2
    assert len(read_labels(log_root(url, tokens["reader"]), "churn")) == 2
    path = list_files(log_root(url, tokens["writer"]), "predictions", "churn")[0].path
    status, _ = _request(url, "DELETE", f"/api/v1/logs/{path}", tokens["reader"])
    assert status == 403
    assert len(read_log(log_root(url, tokens["reader"]), "churn")) == 5


def test_a_published_file_is_a_log_file_and_is_never_replaced(team: Any) -> None:
    url, tokens, _, settings = team
    day = time.strftime("%Y-%m-%d", time.gmtime())
    path = f"/api/v1/logs/predictions/model=churn/date={day}/part-{time.time_ns()}-w_abc.parquet"
    good = parquet_bytes(_rows("churn", 3, time.time() - 10))
    for body in (b"not parquet", parquet_bytes(pd.DataFrame({"x": [1, 2]})), good[:-10]):
        status, answer = _request(url, "PUT", path, tokens["writer"], body)
        assert status == 400 and b"Traceback" not in answer and settings.artifact_uri.encode() not in answer, answer
    assert not list(Path(settings.artifact_uri).rglob("*.parquet"))
    assert _request(url, "PUT", path, tokens["writer"], good)[0] == 201
    assert _request(url, "PUT", path, tokens["writer"], good)[0] == 200  # an upload retried: the same bytes
    for day_that_is_not in ("2026-99-99", "0000-00-00", "2026-02-30"):  # only days a reader can place in time
        wrong = path.replace(f"date={day}", f"date={day_that_is_not}")
        assert _request(url, "PUT", wrong, tokens["writer"], good)[0] == 404
    status, answer = _request(url, "PUT", path, tokens["writer"], parquet_bytes(_rows("churn", 4, time.time())))
    assert status == 409, answer
    assert len(read_log(log_root(url, tokens["reader"]), "churn")) == 3


PATHS = ["../../etc/passwd", "predictions/../../x", "predictions/model=churn/../../../etc", "predictions/model=..",
         "predictions/model=churn/date=2026-01-01/..%2f..%2fx.parquet", "predictions/model=churn/date=2026-01-01/%2e%2e.parquet",
         "predictions/model=churn/date=2026-01-01/part-1-a.parquet/..", "predictions\\model=churn", "/etc/passwd",
         "predictions/model=churn/date=2026-01-01/part-1-a;.parquet", "file:///etc/passwd", "predictions/unassigned",
         "predictions/model=churn/date=2026-01-01/.part-1-a.parquet.tmp", "predictions/model=ch%E2%80%A4%E2%80%A4",
         "predictions/%252e%252e/%252e%252e/etc", "%2e%2e/%2e%2e/etc",
         "predictions/model=churn/date=2026-01-01/..;/x.parquet", "predictions/model=%C0%AE%C0%AE",
         "predictions/model=churn%00/date=2026-01-01", "predictions/model=churn/date=2026-1-1", "predictions/model=churn/date=2026-99-99",
         "predictions/model=churn/date=0000-00-00/part-1-a.parquet",
         "labels/model=churn/date=2026-01-01/part-1-a.parquet%00.txt", "predictions/model=churn/date=2026-01-01/part--a.parquet"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_the_logs_own_paths_are_reached(team: Any, method: str, tmp_path: Path) -> None:
    url, tokens, _, settings = team
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.parquet").write_bytes(parquet_bytes(_rows("churn", 2, time.time())))
    root = Path(settings.artifact_uri).resolve()
    (root / "predictions").mkdir(parents=True)
    (root / "predictions" / "model=churn").symlink_to(outside, target_is_directory=True)  # planted in the artifact root
    before = sorted(p.name for p in outside.iterdir())
    body = parquet_bytes(_rows("churn", 2, time.time()))
    paths = [*PATHS, "predictions/model=churn", "predictions/model=churn/date=2026-01-01/part-1-a.parquet"]
    for p in paths:
        status, answer = _request(url, method, "/api/v1/logs/" + p, tokens["admin"], body if method == "PUT" else None)
        assert status in (400, 404, 405), (p, status, answer[:300])
        assert b"secret" not in answer and str(outside).encode() not in answer
    assert sorted(p.name for p in outside.iterdir()) == before
    assert len(read_log(log_root(url, tokens["admin"]), "churn")) == 0  # the planted folder is not the log's


def test_a_replica_whose_token_may_not_write_the_log_says_so_once_and_keeps_its_spool(team: Any, tmp_path: Path,
                                                                                       caplog: pytest.LogCaptureFixture) -> None:
    url, tokens, _, _ = team
    log = PredictionLog(log_root(url, tokens["reader"]), flush_interval=0.05, spool=tmp_path / "spool")
    try:
        with caplog.at_level("WARNING", logger="modelcycle.serving"):
            for _ in range(3):
                log.add(_rows("churn", 2, time.time() - 5))
                log.flush(timeout=60)
                log.ship(force=True)
        said = [r.getMessage() for r in caplog.records if "cannot be shipped" in r.getMessage()]
        assert len(said) == 1 and "may not write model 'churn'" in said[0], said
        assert log.ship_failures >= 3 and len(list((tmp_path / "spool").rglob("*.parquet"))) == 3
    finally:
        log.close()


def test_a_spooled_file_the_server_refuses_for_good_is_set_aside_and_the_rest_ship(team: Any, tmp_path: Path,
                                                                                  caplog: pytest.LogCaptureFixture) -> None:
    url, tokens, _, _ = team
    spool = tmp_path / "spool"
    day = time.strftime("%Y-%m-%d", time.gmtime())
    bad = spool / "predictions" / "model=churn" / f"date={day}" / f"part-{time.time_ns() - 10**9}-w_a.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(parquet_bytes(pd.DataFrame({"request_id": ["a"], "x": [1]})))  # a log file's name, not its columns
    log = PredictionLog(log_root(url, tokens["writer"]), flush_interval=0.05, spool=spool)
    try:
        frame = _rows("churn", 4, time.time() - 5)
        with caplog.at_level("WARNING", logger="modelcycle.serving"):
            log.add(frame)
            log.flush(timeout=60)
            deadline = time.monotonic() + 60
            while log.spool_bytes and time.monotonic() < deadline:
                log.ship(force=True)
        assert sorted(read_log(log_root(url, tokens["reader"]), "churn")["request_id"]) == sorted(frame["request_id"])
        assert [p.name.split("-", 1)[1] for p in (spool / "refused").iterdir()] == [bad.name] and log.refused == 1
        said = [r.getMessage() for r in caplog.records if "refuses the prediction log file" in r.getMessage()]
        assert len(said) == 1 and "lacks a text request_id and a time" in said[0], said
    finally:
        log.close()


def test_publishing_races_ranges_and_planted_entries(team: Any, tmp_path: Path) -> None:
    """Concurrent publishes of one name: one wins, the others are told, and the winner's bytes stay; a link or a folder
    planted under a file's name is never written through, read or removed as a file; byte ranges past the end are 416."""
    import threading
    import urllib.request

    url, tokens, _, settings = team
    day = time.strftime("%Y-%m-%d", time.gmtime())
    route = f"/api/v1/logs/predictions/model=churn/date={day}"
    bodies = [parquet_bytes(_rows("churn", n, time.time() - 5)) for n in range(2, 8)]
    answers: list[tuple[int, int]] = []
    who = ["writer", "manager", "admin"]  # two each: within what one user may send at once
    threads = [threading.Thread(target=lambda i=i: answers.append((i, _request(url, "PUT", f"{route}/part-5-race_a.parquet",
                                                                               tokens[who[i % 3]], bodies[i])[0])))
               for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [i for i, status in answers if status == 201]
    assert len(won) == 1 and sorted(s for _, s in answers if s != 201) == [409] * (len(bodies) - 1), answers
    assert _request(url, "GET", f"{route}/part-5-race_a.parquet", tokens["reader"])[1] == bodies[won[0]]
    folder = Path(settings.artifact_uri).resolve() / "predictions" / "model=churn" / f"date={day}"
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside")
    (folder / "part-6-link_a.parquet").symlink_to(outside)
    (folder / "part-7-dir_a.parquet").mkdir()
    for name in ("part-6-link_a.parquet", "part-7-dir_a.parquet"):
        assert _request(url, "GET", f"{route}/{name}", tokens["admin"])[0] == 404
        assert _request(url, "PUT", f"{route}/{name}", tokens["admin"], bodies[0])[0] == 409
    assert _request(url, "DELETE", f"{route}/part-7-dir_a.parquet", tokens["admin"])[0] == 404
    assert outside.read_bytes() == b"outside" and (folder / "part-7-dir_a.parquet").is_dir()
    size = len(bodies[won[0]])

    def ranged(spec: str) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{url}{route}/part-5-race_a.parquet", headers={
            "Authorization": f"Bearer {tokens['reader']}", "Range": spec})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    assert ranged("bytes=0-99999999999999") == (206, bodies[won[0]])
    assert ranged(f"bytes={size - 4}-") == (206, bodies[won[0]][-4:])
    assert ranged("bytes=999999999999999-")[0] == 416 and ranged(f"bytes={size}-")[0] == 416
    assert ranged("bytes=10-5")[0] == 416


def _list_bomb(values_per_row: int, lie: bool) -> bytes:
    """A log file of three rows whose list column holds ``values_per_row`` zeros each: a few hundred bytes on disk.
    With ``lie``, its footer says the column holds three values in all (each claim rewritten in place)."""
    import io
    import struct

    import pyarrow as pa
    import pyarrow.parquet as pq

    offsets = pa.array(np.arange(4, dtype="int32") * values_per_row)
    values = pa.ListArray.from_arrays(offsets, pa.array(np.zeros(3 * values_per_row, dtype="int64")))
    table = pa.table({"request_id": [uuid.uuid4().hex for _ in range(3)],
                      "time": pa.array([time.time_ns()] * 3, pa.timestamp("ns", "UTC")), "input.x": values})
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    data = out.getvalue()
    if not lie:
        return data

    def varint(v: int) -> bytes:
        b = bytearray()
        while v >= 0x80:
            b.append(v & 0x7F | 0x80)
            v >>= 7
        return bytes(b + bytes([v]))

    n = struct.unpack("<I", data[-8:-4])[0]
    footer, claim = data[-8 - n:-8], varint(2 * 3 * values_per_row)  # zigzag, as Thrift's compact protocol writes it
    small = bytes([0x86] + [0x80] * (len(claim) - 2) + [0x00])  # 3 (zigzag 6), padded to the claim's length
    assert claim in footer
    return data[:-8 - n] + footer.replace(claim, small) + data[-8:]


def test_a_file_that_expands_once_read_is_refused_whatever_its_footer_says(team: Any, monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    """A few hundred bytes that read as 120 MB (a list of zeros), said in the footer or hidden from it, a time no reader
    can hold, and a file that needs more memory than the checking process has: each refused at publish with why;
    readers of a folder refuse the honest bomb before reading it; the server publishes good files after each."""
    from modelcycle.errors import InvalidInputError
    from modelcycle.server import _logcheck

    url, tokens, _, settings = team
    day = time.strftime("%Y-%m-%d", time.gmtime())
    route = f"/api/v1/logs/predictions/model=churn/date={day}"
    honest, lying = _list_bomb(5_000_000, lie=False), _list_bomb(5_000_000, lie=True)
    assert len(honest) < 4096 and len(lying) < 4096
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    good = parquet_bytes(_rows("churn", 3, time.time()))
    table = pa.Table.from_pandas(_rows("churn", 3, time.time()), preserve_index=False)
    table = table.set_column(table.schema.get_field_index("time"), "time",  # the year 9999, in microseconds
                             pa.array([253_402_300_799_000_000] * 3, pa.timestamp("us", "UTC")))
    far = io.BytesIO()
    pq.write_table(table, far)
    for i, (body, said) in enumerate([(honest, "once read"), (lying, "cannot be read whole"), (far.getvalue(), "out of the range")]):
        status, answer = _request(url, "PUT", f"{route}/part-{i + 1}-bomb_a.parquet", tokens["writer"], body)
        assert status == 400 and said.encode() in answer and b"not published" in answer, answer
        assert b"Traceback" not in answer and settings.artifact_uri.encode() not in answer
    assert _request(url, "PUT", f"{route}/part-9-good_a.parquet", tokens["writer"], good)[0] == 201
    # the checking process's memory is capped: what it cannot hold is refused, and the next file is checked again
    _logcheck.shutdown()
    monkeypatch.setattr(_logcheck, "MEMORY_CAP", 64 << 20)
    try:
        status, answer = _request(url, "PUT", f"{route}/part-10-bomb_a.parquet", tokens["writer"], _list_bomb(12_000_000, lie=True))
        assert status == 400 and b"of memory to read" in answer, answer
        assert _request(url, "PUT", f"{route}/part-11-good_a.parquet", tokens["writer"], good)[0] == 201
    finally:
        _logcheck.shutdown()
    published = sorted(p.name for p in Path(settings.artifact_uri).rglob("*.parquet"))
    assert published == ["part-11-good_a.parquet", "part-9-good_a.parquet"], published
    # a reader of a folder someone wrote to directly refuses the honest bomb by its footer, before reading a value
    folder = tmp_path / "log" / "predictions" / "model=churn" / f"date={day}"
    folder.mkdir(parents=True)
    (folder / f"part-{time.time_ns()}-w_a.parquet").write_bytes(honest)
    with pytest.raises(InvalidInputError, match="take 120,000,"):
        read_log(log_root(tmp_path / "log"), "churn")


def test_a_check_that_runs_too_long_is_ended_and_the_next_one_runs(tmp_path: Path) -> None:
    """The checking process is ended when a file takes longer than the check's time to read; a later check starts a
    new one."""
    from modelcycle.errors import InvalidInputError
    from modelcycle.server import _logcheck

    day = time.strftime("%Y-%m-%d", time.gmtime())
    path = f"predictions/model=churn/date={day}/part-1-w_a.parquet"
    spooled = tmp_path / "body"
    spooled.write_bytes(parquet_bytes(_rows("churn", 50, time.time())))
    try:
        with pytest.raises(InvalidInputError, match="took more than 0 s to read"):
            _logcheck.check_published(str(spooled), path, timeout=0.0)
        assert _logcheck._pool is None
        assert _logcheck.check_published(str(spooled), path, timeout=120) > 0
    finally:
        _logcheck.shutdown()


def test_a_client_that_goes_away_mid_upload_leaves_nothing_and_no_traceback(team: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A replica killed while it sends a file: nothing is published, the server's spool keeps nothing, its log holds
    no traceback, and the next upload is taken."""
    import logging
    import socket
    from urllib.parse import urlsplit

    url, tokens, _, settings = team
    caplog.set_level(logging.INFO)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    route = f"/api/v1/logs/predictions/model=churn/date={day}"
    parts = urlsplit(url)
    for path in ("/api/v1/blobs/" + "0" * 64, f"{route}/part-1-gone_a.parquet"):
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
            s.sendall((f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tokens['writer']}\r\n"
                       "Content-Length: 100000\r\n\r\n").encode() + b"PAR1" * 100)
    good = parquet_bytes(_rows("churn", 3, time.time()))
    deadline = time.monotonic() + 60
    while _request(url, "PUT", f"{route}/part-2-next_a.parquet", tokens["writer"], good)[0] not in (200, 201):
        assert time.monotonic() < deadline
    spool = Path(settings.home) / "server-uploads"
    while any(spool.iterdir()):  # the cut uploads' files are removed once the server notices the client went away
        assert time.monotonic() < deadline, list(spool.iterdir())
        time.sleep(0.05)
    assert [p.name for p in Path(settings.artifact_uri).rglob("*.parquet")] == ["part-2-next_a.parquet"]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()], caplog.text


def test_at_most_eight_files_are_received_at_once_into_files_not_memory(team: Any) -> None:
    """Eight uploads still sending hold the server's eight places (each a file in its spool); a ninth is answered 503
    at once (the replica sends it again later); once they end, the next is taken. One user holds four places at most."""
    import socket
    from urllib.parse import urlsplit

    from modelcycle.server.logs import MAX_UPLOADS, MAX_UPLOADS_PER_USER

    url, tokens, _, settings = team
    day = time.strftime("%Y-%m-%d", time.gmtime())
    route = f"/api/v1/logs/predictions/model=churn/date={day}"
    parts = urlsplit(url)
    spool = Path(settings.home) / "server-uploads"
    slow = []
    try:
        good = parquet_bytes(_rows("churn", 3, time.time()))
        for i in range(MAX_UPLOADS):
            s = socket.create_connection((parts.hostname, parts.port), timeout=30)
            who = ["writer", "manager"][i // MAX_UPLOADS_PER_USER]
            s.sendall((f"PUT {route}/part-{i}-slow_a.parquet HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                       f"{tokens[who]}\r\nContent-Length: 1000000\r\n\r\n").encode() + b"PAR1")
            slow.append(s)
            deadline = time.monotonic() + 60
            while len(list(spool.glob(".log-*"))) < i + 1:
                assert time.monotonic() < deadline, list(spool.iterdir())
                time.sleep(0.05)
            if i == MAX_UPLOADS_PER_USER - 1:  # the writer's four places are taken: its fifth waits, the others' do not
                assert _request(url, "PUT", f"{route}/part-99-next_a.parquet", tokens["writer"], good)[0] == 503
        status, answer = _request(url, "PUT", f"{route}/part-100-next_a.parquet", tokens["admin"], good)
        assert status == 503 and b"send this one again" in answer, answer
    finally:
        for s in slow:
            s.close()
    deadline = time.monotonic() + 60
    while _request(url, "PUT", f"{route}/part-100-next_a.parquet", tokens["writer"], good)[0] != 201:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_body_trickled_in_or_stopped_loses_its_place(team: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body that stops, or comes slower than the least rate once the grace has passed, is answered 400 and its place
    is free again (the grace is made 1 s here, from 30)."""
    import contextlib
    import socket
    from urllib.parse import urlsplit

    from modelcycle.server import logs

    monkeypatch.setattr(logs, "GRACE", 1.0)
    url, tokens, _, _ = team
    day = time.strftime("%Y-%m-%d", time.gmtime())
    parts = urlsplit(url)
    for trickle in (False, True):
        with socket.create_connection((parts.hostname, parts.port), timeout=60) as s:
            s.sendall((f"PUT /api/v1/logs/predictions/model=churn/date={day}/part-{int(trickle)}-slow_a.parquet HTTP/1.1\r\n"
                       f"Host: 127.0.0.1\r\nAuthorization: Bearer {tokens['writer']}\r\nContent-Length: 100000\r\n\r\n").encode())
            began = time.monotonic()
            s.setblocking(False)
            answer = b""
            while b"\r\n\r\n" not in answer:
                assert time.monotonic() - began < 30, "the trickle was not cut"
                if trickle:
                    with contextlib.suppress(OSError):  # a byte every 0.1 s: far below the least rate
                        s.sendall(b"P")
                time.sleep(0.1)
                try:
                    answer += s.recv(65536)
                except BlockingIOError:
                    pass
            assert answer.split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request", answer


def test_a_file_whose_columns_do_not_fit_the_models_log_is_refused(team: Any) -> None:
    """One writer's file cannot make the model's log unreadable for everyone: a column holds one kind of value in every
    file, the time is UTC and the latency a number; readers go on reading the files that fit."""
    url, tokens, _, _ = team
    day = time.strftime("%Y-%m-%d", time.gmtime())
    route = f"/api/v1/logs/predictions/model=churn/date={day}"
    good = _rows("churn", 3, time.time() - 10)
    assert _request(url, "PUT", f"{route}/part-{time.time_ns()}-w_a.parquet", tokens["writer"], parquet_bytes(good))[0] == 201
    odd = [(409, good.assign(prediction=[b"x", b"y", b"z"])),  # bytes where the log holds integers
           (400, good.assign(latency_ms=["fast"] * 3)),
           (400, good.assign(time=good["time"].dt.tz_convert("America/New_York")))]
    for status, frame in odd:
        got, answer = _request(url, "PUT", f"{route}/part-{time.time_ns()}-w_a.parquet", tokens["writer"],
                               parquet_bytes(frame.assign(request_id=[uuid.uuid4().hex for _ in range(3)])))
        assert got == status and b"not published" in answer, answer
    fits = good.assign(request_id=[uuid.uuid4().hex for _ in range(3)], prediction=[0.5, 1.0, 0.0])  # int → float: fits
    assert _request(url, "PUT", f"{route}/part-{time.time_ns()}-w_a.parquet", tokens["writer"], parquet_bytes(fits))[0] == 201
    assert len(read_log(log_root(url, tokens["reader"]), "churn")) == 6


def test_files_each_within_bounds_but_too_much_together_are_refused_before_reading(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from modelcycle.errors import InvalidInputError
    from modelcycle.store import predictions

    root = tmp_path / "log"
    day = time.strftime("%Y-%m-%d", time.gmtime())
    folder = root / "predictions" / "model=churn" / f"date={day}"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"part-{time.time_ns()}-w{i}_a.parquet").write_bytes(parquet_bytes(_rows("churn", 20, time.time())))
    one = predictions._check(next(folder.iterdir()), log_root(root))[2]
    with monkeypatch.context() as m:
        m.setattr(predictions, "MAX_READ_BYTES", 3 * one - 1)  # each file fits, the three do not
        with pytest.raises(InvalidInputError, match=r"bytes of values once read.*ask for a shorter time range"):
            read_log(log_root(root), "churn")
        with pytest.raises(InvalidInputError, match=r"bytes of values once read, more than"):  # one read of all (monitor)
            predictions.read_parquet(log_root(root), sorted(str(p) for p in folder.iterdir()))
    assert len(read_log(log_root(root), "churn")) == 60
