"""`modelcycle serve` (a model over HTTP) and `modelcycle predict` (batch scoring of a file)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from modelcycle.cli._common import JSON_OPTION, console, errors, print_json, printable
from modelcycle.errors import ConfigurationError, InvalidInputError

_ENV = "MODELCYCLE_SERVE_OPTIONS"  # how `serve --workers N` hands its options to each worker process


def factory() -> Any:
    """The app of one uvicorn worker process, from the options `modelcycle serve` put in the environment."""
    from modelcycle.serving.app import ServeConfig, create_app
    from modelcycle.settings import Settings

    options = json.loads(os.environ[_ENV])
    settings = Settings.from_env()
    config = ServeConfig(token=settings.serve_token if options["auth"] else None, max_queue=options["max_queue"],
                         max_body_mb=options["max_body_mb"], log_predictions=options["log"], trust=options["trust"],
                         poll_seconds=options["poll"], threads=options.get("threads", 1), host=options.get("host", "127.0.0.1"),
                         allowed_hosts=options.get("allowed_hosts"), body_timeout=options.get("body_timeout", 30.0),
                         trusted_types=options.get("trusted_types", ()))
    return create_app(settings, options["model"], options["shadow"], config)


def serve(
    model: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION, models:/…, runs:/<run>/model or a package folder")],
    shadow: Annotated[str | None, typer.Option("--shadow", help="A challenger (NAME@ALIAS …) that predicts on the same inputs, logged, "
                                                                "never answered.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs a token or --no-auth.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535)] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes.")] = 1,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without a token even on a non-loopback address.")] = False,
    max_queue: Annotated[int, typer.Option("--max-queue", min=1, help="Requests in flight before the server answers 503.")] = 64,
    max_body_mb: Annotated[float, typer.Option("--max-body-mb", min=0.001, help="Largest request body.")] = 10.0,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log predictions.")] = False,
    trust: Annotated[bool, typer.Option("--trust", help="Allow pickled PythonModel packages (they can run any code).")] = False,
    trusted_type: Annotated[list[str] | None, typer.Option(
        "--trusted-type", help="A type (module.Class) model files may build beyond the library allow-list; repeat for more "
                               "(added to MODELCYCLE_TRUSTED_TYPES).")] = None,
    allowed_hosts: Annotated[str | None, typer.Option(
        "--allowed-hosts", help="Comma-separated Host header values to answer for (a proxy's name; * for any). "
                                "Default: loopback names on a loopback address, anything otherwise.")] = None,
    body_timeout: Annotated[float, typer.Option("--body-timeout", min=0.1, help="Seconds a request body may take to arrive.")] = 30.0,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between checks of the alias.")] = 1.0,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Prediction threads per worker (more help models that release the GIL).")] = 1,
    as_json: bool = typer.Option(False, "--json", help="Once the server answers, print one JSON line: its url, model, version and pid."),
) -> None:
    """Serve a model over HTTP: Open Inference Protocol, /predict and MLflow's /invocations; it follows its alias.

    On a loopback address it answers only requests whose Host header is a loopback name (DNS rebinding), and every POST
    must be JSON: a web page in a browser cannot post to it. It says where it listens once it answers.
    """
    from modelcycle.serving.http import is_loopback
    from modelcycle.settings import Settings

    @errors
    def run() -> None:
        import uvicorn

        settings = Settings.from_env()
        if not is_loopback(host) and not settings.serve_token and not no_auth:
            raise ConfigurationError(
                f"listening on {host} would expose the model to the network without a token; set MODELCYCLE_SERVE_TOKEN=<secret> "
                "(clients then send 'Authorization: Bearer <secret>'), or pass --no-auth to serve it openly")
        hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()] if allowed_hosts else None
        from modelcycle.models.trust import Trust

        types = sorted(Trust.of(False, trusted_type).types)  # a denied name is refused here, before the port is taken
        check_port(host, port)
        options = {"model": model, "shadow": shadow, "auth": not no_auth, "max_queue": max_queue, "max_body_mb": max_body_mb,
                   "log": not no_log, "trust": trust, "poll": poll, "threads": threads, "host": host, "allowed_hosts": hosts,
                   "body_timeout": body_timeout, "trusted_types": types}
        os.environ[_ENV] = json.dumps(options)
        app = factory()  # load the model once here: a model that cannot be served fails before the port is taken
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"

        def ready() -> None:
            if as_json:
                print_json_line({"url": url, "model": model, "version": app.state.holder.version, "pid": os.getpid(), "workers": workers})
            else:
                console(stderr=True).print(f"serving {printable(model)} on {printable(url)} ({workers} worker{'s' if workers > 1 else ''}"
                                           f"{', token required' if settings.serve_token and not no_auth else ''}); Ctrl-C to stop")

        announce_when_ready(url, ready)
        # connections beyond the limit get 503 at once: a flood of idle or trickling connections cannot exhaust file descriptors
        limits = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": 30, "access_log": False,
                  "limit_concurrency": max(1024, 16 * max_queue)}
        if workers == 1:  # this process serves: the app checked above is the one that runs (one log writer, one shipper)
            uvicorn.run(app, **limits)
            return
        app.state.server.stop()  # each worker process builds its own; this one's log writer must not ship their spool
        uvicorn.run("modelcycle.cli.serve:factory", factory=True, workers=workers, **limits)

    run()


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` once, as uvicorn will, so a taken port is one clear line before anything is announced.

    Raises:
        ConfigurationError: the port is in use, or the address cannot be listened on here.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a port in TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigurationError(f"port {port} on {host} is in use; pass --port with a free one") from None
            raise ConfigurationError(f"cannot listen on {host}:{port} ({e.strerror or e}); pass another --host or --port") from None


def announce_when_ready(url: str, say: Any, path: str = "/v2/health/ready") -> None:
    """Call ``say()`` once the server at ``url`` answers ``path`` (from a thread; it gives up when the process ends)."""
    import threading
    import time
    import urllib.request

    probe = url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")  # a wildcard bind answers on loopback
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP(S)_PROXY
    # a loopback Host is answered whatever --allowed-hosts says (the probe comes from this machine)
    request = urllib.request.Request(f"{probe}{path}", headers={"Host": "localhost"})

    def watch() -> None:
        while True:
            try:
                with opener.open(request, timeout=2) as answer:
                    if answer.status == 200:
                        say()
                        return
            except OSError:
                pass
            time.sleep(0.1)

    threading.Thread(target=watch, name="modelcycle-serve-ready", daemon=True).start()


def print_json_line(data: Any) -> None:
    """One line of JSON on stdout, flushed at once (a script reads it while the server runs)."""
    import sys

    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def predict(
    model: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION, models:/…, runs:/<run>/model or a package folder")],
    source: Annotated[str, typer.Argument(help="Rows to score: .parquet or .csv, a path or an object-store URL (s3://…)")],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the scored rows (.parquet): a path or an "
                                        "object-store URL, written whole.")],
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", min=1, help="Rows per batch (memory stays bounded).")] = 100_000,
    trust: Annotated[bool, typer.Option("--trust", help="Allow pickled PythonModel packages.")] = False,
    trusted_type: Annotated[list[str] | None, typer.Option(
        "--trusted-type", help="A type (module.Class) model files may build beyond the library allow-list; repeat for more.")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local, dask (a LocalCluster) or dask://host:port")] = "local",
    as_json: bool = JSON_OPTION,
) -> None:
    """Score a file in batches, checked against the model's signature; writes the input with prediction columns.

    With ``--executor dask`` the batches are scored in parallel on Dask workers (each loads the
    verified package once) and written here in order. Workers of a remote cluster fetch the package from
    the artifact store with their own settings (MODELCYCLE_STORE_URI, MODELCYCLE_ARTIFACT_URI and the
    object store's credentials in their environment); nothing secret is sent to them.
    """

    @errors
    def run() -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from modelcycle.data.profile import iter_batches, total_rows
        from modelcycle.registry.fluent import load_model

        out_name = output.rstrip("/").rsplit("/", 1)[-1]
        if not out_name.lower().endswith((".parquet", ".pq")):
            raise InvalidInputError(f"{out_name}: write the scores as .parquet")
        remote_out = "://" in output and not output.startswith("file://")
        loaded = load_model(str(model), trust=trust, trusted_types=trusted_type)
        total = total_rows(str(source))
        batches = iter_batches(str(source), chunk_rows)
        local = (_score(loaded, batch) for batch in batches)
        scored_batches = _on_dask(executor, loaded, str(model), batches, (trust, list(trusted_type or ()))) \
            if executor != "local" else local
        if remote_out:
            import tempfile

            tmp = Path(tempfile.mkdtemp(prefix="modelcycle-predict-")) / out_name
        else:
            target = Path(output.removeprefix("file://"))
            tmp = target.with_name(f".{target.name}.partial")
        writer = None
        scored = 0
        try:
            with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console(stderr=True),
                          disable=as_json) as bar:
                task = bar.add_task("rows", total=total)
                for out in scored_batches:
                    table = pa.Table.from_pandas(out, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table.cast(writer.schema))
                    scored += len(out)
                    bar.update(task, advance=len(out))
            if writer is None:
                raise InvalidInputError(f"{source} has no rows to score")
            writer.close()
            writer = None
            if remote_out:
                _upload(tmp, output)
            else:
                os.replace(tmp, target)
        finally:
            if writer is not None:
                writer.close()
            tmp.unlink(missing_ok=True)
            if remote_out:
                tmp.parent.rmdir()
        if as_json:
            version = loaded.version
            print_json({"model": model, "name": version.name if version else None, "version": version.version if version else None,
                        "sha256": loaded.hash, "rows": scored, "output": str(output)})
            return
        console().print(f"scored {scored:,} rows with {printable(model)} → {printable(output)}")

    run()


def _score(loaded: Any, batch: Any) -> Any:
    import numpy as np

    out = batch.reset_index(drop=True).copy()
    prediction = np.asarray(loaded.predict(batch))
    out["prediction"] = prediction if prediction.ndim == 1 else list(prediction)
    if hasattr(loaded, "predict_proba"):
        proba = np.asarray(loaded.predict_proba(batch))
        for i, c in enumerate(getattr(loaded.raw, "classes_", range(proba.shape[1]))):
            out[f"proba.{c}"] = proba[:, i]
    return out


def _upload(local: Path, url: str) -> None:
    """Publish a finished file at an object-store URL in one upload (readers see all of it or nothing)."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        fs.put_file(str(local), path)
    except (ImportError, ValueError) as e:
        raise InvalidInputError(f"cannot write {url!r}: {e}; install the fsspec driver for this scheme (s3fs for s3://)") from None
    except OSError as e:
        raise InvalidInputError(f"cannot write {url!r}: {e}") from None


_WORKER_MODELS: dict[str, Any] = {}


def _score_remote(settings: dict[str, Any], uri: str, sha: str, batch: Any, trust: tuple[bool, list[str]]) -> Any:
    """In a Dask worker: the model (fetched from the artifact store with the worker's own settings, verified against
    ``sha`` and loaded once per worker) scores one batch."""
    loaded = _WORKER_MODELS.get(sha)
    if loaded is None:
        from modelcycle.errors import ModelIntegrityError
        from modelcycle.pipelines.executors import worker_client
        from modelcycle.registry import Registry

        found = Registry(worker_client(settings)).load_model(uri, trust=trust[0], trusted_types=trust[1])
        if found.hash != sha:
            raise ModelIntegrityError(f"{uri} on this worker is the package sha256 {found.hash[:12]}…, the client scored with "
                                      f"{sha[:12]}…; refusing to score with another model")
        loaded = _WORKER_MODELS[sha] = found
    return _score(loaded, batch)


def _pinned(loaded: Any, model: str) -> str:
    """The reference a worker loads the very same package by: the registered version, the run's URI, or the folder."""
    if loaded.version is not None:
        return f"models:/{loaded.version.name}/{loaded.version.version}"
    if model.startswith("runs:/"):
        return model
    return str(loaded.path)  # a package folder: the workers must see the same disk


def _on_dask(executor: str, loaded: Any, model: str, batches: Any, trust: tuple[bool, list[str]], ahead: int = 4) -> Any:
    """Scored batches, in order, computed on Dask with at most ``ahead`` batches in flight (memory stays bounded)."""
    from collections import deque

    from modelcycle.pipelines.executors import dask_client, worker_settings
    from modelcycle.tracking.fluent import get_client

    dask = dask_client(None if executor == "dask" else executor)
    settings = worker_settings(get_client().settings, remote=executor != "dask")
    uri = _pinned(loaded, model)
    try:
        pending: deque[Any] = deque()
        for batch in batches:
            pending.append(dask.submit(_score_remote, settings, uri, loaded.hash, batch, trust, pure=False))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        dask.close()
