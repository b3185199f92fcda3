"""``modelcycle server``: the team server over this machine's stores."""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, Any

import typer

from modelcycle.cli._common import JSON_OPTION, console, errors, print_json, printable, when
from modelcycle.errors import ConfigurationError, InvalidInputError

__all__ = ["app", "factory", "server", "ui"]

app = typer.Typer(invoke_without_command=True)  # its help is the callback's docstring
users = typer.Typer(help="The server's users: their tokens and roles. Run where the server runs, on its stores.",
                    no_args_is_help=True)
app.add_typer(users, name="users")

_ENV = "_MODELCYCLE_SERVER_OPTIONS"  # how the options reach each worker process


def factory() -> Any:
    """The application each worker process serves, from the options the command put in the environment."""
    from modelcycle.server.app import create_app
    from modelcycle.serving.http import is_loopback
    from modelcycle.settings import Settings

    options = json.loads(os.environ[_ENV])
    settings = Settings.from_env()
    return create_app(settings, token=settings.server_token, allowed_hosts=options["allowed_hosts"],
                      loopback=is_loopback(options["host"]), no_auth=options["no_auth"])


@app.callback(invoke_without_command=True)
def server(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address; all but loopback need users, a server token or --no-auth.")] = "127.0.0.1",
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
    home folder). Once a user exists (`modelcycle server users add`), or MODELCYCLE_SERVER_TOKEN is set (an admin's
    token), every request must carry a token. On a loopback address it answers only loopback Host headers (DNS
    rebinding); any other address needs users, the server token, or --no-auth.
    """
    if ctx.invoked_subcommand is not None:
        return
    _serve(host, port, workers, no_auth, allowed_hosts, as_json, browser=False)


def ui(
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535)] = 5000,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser; print the address.")] = False,
    as_json: bool = typer.Option(False, "--json", help="Once the UI answers, print one JSON line: its url and pid."),
) -> None:
    """Open the web UI over this machine's records: a server on 127.0.0.1 (yours alone), then your browser.

    With MODELCYCLE_TRACKING_URI set to a team server, its own address is opened instead: the team's UI is there.
    """
    from modelcycle.settings import Settings

    @errors
    def remote() -> bool:
        uri = Settings.from_env().store_uri
        if not uri.startswith(("http://", "https://")):
            return False
        console(stderr=True).print(f"the team server's UI: {printable(uri)} (sign in with your token)")
        if not no_browser:
            _open(uri)
        return True

    if not remote():
        _serve("127.0.0.1", port, 1, False, None, as_json, browser=not no_browser)


def _open(url: str) -> None:
    import webbrowser

    try:
        webbrowser.open(url, new=2)
    except Exception:  # no browser here (a server, a container): the address was printed
        pass


def _serve(host: str, port: int, workers: int, no_auth: bool, allowed_hosts: str | None, as_json: bool, browser: bool) -> None:
    from modelcycle.cli.serve import announce_when_ready, check_port, print_json_line
    from modelcycle.serving.http import is_loopback
    from modelcycle.settings import Settings

    @errors
    def run() -> None:
        import uvicorn

        settings = Settings.from_env()
        hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()] if allowed_hosts else None
        check_port(host, port)
        os.environ[_ENV] = json.dumps({"host": host, "no_auth": no_auth, "allowed_hosts": hosts})
        app = factory()  # the stores are opened (and migrated) before the port is taken: a bad URI is one line
        users_exist = app.state.store.users_exist()
        if not is_loopback(host) and not settings.server_token and not users_exist and not no_auth:
            raise ConfigurationError(
                f"listening on {host} would open the team's records to the network without a token; add a user "
                "(`modelcycle server users add <name> --admin`, clients set MODELCYCLE_TRACKING_TOKEN to its token), "
                "set MODELCYCLE_SERVER_TOKEN=<secret>, or pass --no-auth")
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        shown = f"http://<this machine's name>:{port}" if host in ("0.0.0.0", "::", "") else url  # every address

        def ready() -> None:
            if as_json:
                print_json_line({"url": url, "pid": os.getpid(), "workers": workers})
            else:
                token = ", token required" if (settings.server_token or users_exist) and not no_auth else ""
                console(stderr=True).print(f"modelcycle server on {printable(url)} ({workers} worker{'s' if workers > 1 else ''}"
                                           f"{token}); web UI: {printable(shown)}/; clients: "
                                           f"MODELCYCLE_TRACKING_URI={printable(shown)}; Ctrl-C to stop")
            if browser:
                _open(url + "/")

        announce_when_ready(url, ready, path="/api/v1/health")
        # at most 1,000 connections at once (more are answered 503): a flood of half-sent requests cannot take every
        # file descriptor; exposed to a network, put a reverse proxy in front for header timeouts and TLS
        limits = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": 30, "access_log": False,
                  "limit_concurrency": 1000}
        if workers == 1:
            uvicorn.run(app, **limits)
            return
        uvicorn.run("modelcycle.cli.server:factory", factory=True, workers=workers, **limits)

    run()


# --- users -----------------------------------------------------------------------------------------------------------
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}$")
_SCOPE = re.compile(r"^(experiment|model):(.+)$")
_ROLES = ("read", "write", "manage", "none")


def _users_store() -> Any:
    from modelcycle.settings import Settings
    from modelcycle.store import open_metadata_store

    settings = Settings.from_env()
    if settings.store_uri.startswith(("http://", "https://")):
        raise ConfigurationError("users are kept in the server's own store: run `modelcycle server users` where the "
                                 "server runs, with its MODELCYCLE_STORE_URI, not through MODELCYCLE_TRACKING_URI")
    return open_metadata_store(settings.store_uri, busy_timeout=settings.busy_timeout)


def _user_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(f"{name!r} is not a user name: 1 to 100 letters, digits and _ . @ + -, starting with a "
                                "letter or digit")
    return name


def _scope(text: str) -> tuple[str, str]:
    m = _SCOPE.match(text)
    if not m or len(m.group(2)) > 250:
        raise InvalidInputError(f"{text!r} is not a scope: experiment:<name> or model:<name> (or * for all), "
                                "e.g. experiment:churn or model:*")
    return m.group(1), m.group(2)


def _role(text: str) -> str | None:
    if text not in _ROLES:
        raise InvalidInputError(f"{text!r} is not a role: one of {', '.join(_ROLES)}")
    return None if text == "none" else text


def _new_token() -> tuple[str, str]:
    import hashlib
    import secrets

    token = "mc_" + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def _show_token(name: str, token: str, as_json: bool, what: str) -> None:
    if as_json:
        print_json({"user": name, "token": token})
        return
    con = console()
    con.print(f"{what} [bold]{printable(name)}[/]. Its token, shown only now (the server keeps only its hash):")
    con.print(token, markup=False, highlight=False, soft_wrap=True)
    con.print("[dim]On the user's machine: MODELCYCLE_TRACKING_TOKEN=<token>[/]")


@users.command("add")
@errors
def users_add(
    name: Annotated[str, typer.Argument(help="The user's name, recorded with every write it makes.")],
    admin: Annotated[bool, typer.Option("--admin", help="May do everything, including garbage collection.")] = False,
    grant: Annotated[list[str] | None, typer.Option(
        "--grant", help="SCOPE=ROLE, e.g. experiment:churn=write or model:*=read; repeatable.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a user and print its token (once)."""
    name = _user_name(name)
    grants = []
    for g in grant or []:
        scope, _, role = g.rpartition("=")
        grants.append((*_scope(scope), _role(role)))
    store = _users_store()
    token, digest = _new_token()
    store.user_add(name, admin, digest, by=os.environ.get("USER"))
    for kind, target, role in grants:
        store.user_grant(name, kind, target, role)
    _show_token(name, token, as_json, "Added")


@users.command("rotate")
@errors
def users_rotate(name: Annotated[str, typer.Argument()], as_json: bool = JSON_OPTION) -> None:
    """Give a user a new token; its old ones stop working (within two seconds on a running server)."""
    token, digest = _new_token()
    _users_store().user_rotate(_user_name(name), digest)
    _show_token(name, token, as_json, "New token for")


@users.command("revoke")
@errors
def users_revoke(name: Annotated[str, typer.Argument()], as_json: bool = JSON_OPTION) -> None:
    """Revoke every token of a user (within two seconds on a running server); its records stay."""
    n = _users_store().user_revoke(_user_name(name))
    if as_json:
        print_json({"user": name, "revoked": n})
        return
    console().print(f"Revoked {n} token(s) of {printable(name)}; `modelcycle server users rotate {printable(name)}` "
                    "gives it a new one.")


@users.command("grant")
@errors
def users_grant(
    name: Annotated[str, typer.Argument()],
    scope: Annotated[str, typer.Argument(help="experiment:<name> or model:<name>; * for all (or SCOPE=ROLE, as --grant takes).")],
    role: Annotated[str | None, typer.Argument(help="read, write, manage, or none to take the role away.")] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Give a user a role on an experiment or a registered model (read < write < manage)."""
    if role is None:  # experiment:churn=write, as `users add --grant` takes it
        scope, _, role = scope.rpartition("=") if "=" in scope else (scope, "", "")
        if not role:
            raise InvalidInputError(f"give the role too: `modelcycle server users grant {name} {scope} write` "
                                    "(or read, manage, none)")
    kind, target = _scope(scope)
    value = _role(role)
    _users_store().user_grant(_user_name(name), kind, target, value)
    if as_json:
        print_json({"user": name, "scope": f"{kind}:{target}", "role": value})
        return
    console().print(f"{printable(name)}: {printable(role)} on {kind} {printable(target)}")


@users.command("ls")
@errors
def users_ls(as_json: bool = JSON_OPTION) -> None:
    """List users, their live tokens and roles."""
    found = _users_store().user_list()
    if as_json:
        print_json(found)
        return
    from rich.table import Table

    con = console()
    if not found:
        con.print("No users: the server answers anyone who reaches it (on loopback). "
                  "Add one with `modelcycle server users add <name> --admin`.")
        return
    table = Table(header_style="bold")
    for col in ("user", "admin", "live tokens", "roles", "added"):
        table.add_column(col)
    for u in found:
        roles = ", ".join(f"{scope}={role}" for scope, role in u["grants"].items())
        table.add_row(printable(u["name"]), "yes" if u["admin"] else "", str(u["tokens"]), printable(roles or "—"),
                      when(u["created_at"]))
    con.print(table)
