"""``modelcycle server``: the team server over this machine's stores."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from modelcycle.cli._common import console, errors, printable
from modelcycle.errors import ConfigurationError

__all__ = ["factory", "server"]

_ENV = "_MODELCYCLE_SERVER_OPTIONS"  # how the options reach each worker process


def factory() -> Any:
    """The application each worker process serves, from the options the command put in the environment."""
    from modelcycle.server.app import create_app
    from modelcycle.serving.http import is_loopback
    from modelcycle.settings import Settings

    options = json.loads(os.environ[_ENV])
    settings = Settings.from_env()
    return create_app(settings, token=None if options["no_auth"] else settings.server_token,
                      allowed_hosts=options["allowed_hosts"], loopback=is_loopback(options["host"]))


def server(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs a token or --no-auth.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535)] = 5000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes.")] = 1,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Answer without a token even on a non-loopback address.")] = False,
    allowed_hosts: Annotated[str | None, typer.Option(
        "--allowed-hosts", help="Comma-separated Host names answered beside loopback ones (behind a proxy).")] = None,
    as_json: bool = typer.Option(False, "--json", help="Once the server answers, print one JSON line: its url and pid."),
) -> None:
    """Serve this machine's stores to a team: clients set MODELCYCLE_TRACKING_URI=http://host:port and
    MODELCYCLE_TRACKING_TOKEN, and need no database password or object-store keys.

    The stores are the ones this process is configured with (MODELCYCLE_STORE_URI, MODELCYCLE_ARTIFACT_URI, or the
    home folder). With MODELCYCLE_SERVER_TOKEN set, every request must carry it. On a loopback address it answers only
    loopback Host headers (DNS rebinding); any other address needs the token or --no-auth.
    """
    from modelcycle.cli.serve import announce_when_ready, check_port, print_json_line
    from modelcycle.serving.http import is_loopback
    from modelcycle.settings import Settings

    @errors
    def run() -> None:
        import uvicorn

        settings = Settings.from_env()
        if not is_loopback(host) and not settings.server_token and not no_auth:
            raise ConfigurationError(
                f"listening on {host} would open the team's records to the network without a token; set "
                "MODELCYCLE_SERVER_TOKEN=<secret> (clients set MODELCYCLE_TRACKING_TOKEN=<secret>), or pass --no-auth")
        hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()] if allowed_hosts else None
        check_port(host, port)
        os.environ[_ENV] = json.dumps({"host": host, "no_auth": no_auth, "allowed_hosts": hosts})
        app = factory()  # the stores are opened (and migrated) before the port is taken: a bad URI is one line
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"

        def ready() -> None:
            if as_json:
                print_json_line({"url": url, "pid": os.getpid(), "workers": workers})
            else:
                token = ", token required" if settings.server_token and not no_auth else ""
                console(stderr=True).print(f"modelcycle server on {printable(url)} ({workers} worker{'s' if workers > 1 else ''}"
                                           f"{token}); clients: MODELCYCLE_TRACKING_URI={printable(url)}; Ctrl-C to stop")

        announce_when_ready(url, ready, path="/api/v1/health")
        limits = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": 30, "access_log": False}
        if workers == 1:
            uvicorn.run(app, **limits)
            return
        uvicorn.run("modelcycle.cli.server:factory", factory=True, workers=workers, **limits)

    run()
