"""The team server's users: who they are, their tokens (kept as sha256 digests) and their roles.

These calls are the server's own: they are not answered over HTTP, and are made by ``modelcycle server users`` on the
machine that holds the server's store, or by the server to authenticate a request.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from modelcycle.errors import ConflictError, NotFoundError
from modelcycle.store.metadata import schema as s

__all__ = ["ROLES", "UserRecord", "UsersTables"]

ROLES = ("read", "write", "manage")  # each includes the ones before it


class UserRecord(dict[str, Any]):
    """A user as stored: ``name``, ``admin``, ``created_at``, ``created_by``, ``tokens`` (live ones),
    ``grants`` (``{"experiment:churn": "write", …}``)."""


class UsersTables:
    """Mixed into SqlMetadataStore; uses its ``_read``, ``_write`` and ``_insert``."""

    _read: Any
    _write: Any
    _insert: Any

    def users_exist(self) -> bool:
        """Whether any user was ever added (the server then asks every request for a token, even once every token
        was revoked)."""
        return self._read(lambda c: c.execute(select(s.users.c.name).limit(1)).first()) is not None

    def user_add(self, name: str, admin: bool, digest: str, by: str | None = None) -> None:
        """A new user with one token; ConflictError if the name is taken."""

        def add(conn: Connection) -> None:
            if conn.execute(select(s.users.c.name).where(s.users.c.name == name)).first() is not None:
                raise ConflictError(f"user {name!r} exists; `modelcycle server users rotate {name}` gives a new token")
            now = time.time()
            conn.execute(s.users.insert().values(name=name, admin=admin, created_at=now, created_by=by))
            conn.execute(s.user_tokens.insert().values(digest=digest, user=name, created_at=now))

        self._write(add)

    def user_rotate(self, name: str, digest: str) -> int:
        """Revoke the user's tokens and give it ``digest``; returns how many tokens were revoked."""

        def rotate(conn: Connection) -> int:
            self._user_row(conn, name)
            now = time.time()
            t = s.user_tokens.c
            n = conn.execute(update(s.user_tokens).where(t.user == name, t.revoked_at.is_(None)).values(revoked_at=now)).rowcount
            conn.execute(s.user_tokens.insert().values(digest=digest, user=name, created_at=now))
            return int(n)

        return self._write(rotate)

    def user_revoke(self, name: str) -> int:
        """Revoke every token of the user (it can no longer make requests); returns how many were live."""

        def revoke(conn: Connection) -> int:
            self._user_row(conn, name)
            t = s.user_tokens.c
            stmt = update(s.user_tokens).where(t.user == name, t.revoked_at.is_(None)).values(revoked_at=time.time())
            return int(conn.execute(stmt).rowcount)

        return self._write(revoke)

    def user_set_admin(self, name: str, admin: bool) -> None:
        def set_admin(conn: Connection) -> None:
            self._user_row(conn, name)
            conn.execute(update(s.users).where(s.users.c.name == name).values(admin=admin))

        self._write(set_admin)

    def user_grant(self, name: str, kind: str, target: str, role: str | None) -> None:
        """Give ``name`` ``role`` on one experiment or model (``target``; ``"*"`` for all), or take it away (None)."""
        g = s.grants.c

        def grant(conn: Connection) -> None:
            self._user_row(conn, name)
            conn.execute(delete(s.grants).where(g.user == name, g.kind == kind, g.name == target))
            if role is not None:
                conn.execute(s.grants.insert().values(user=name, kind=kind, name=target, role=role))

        self._write(grant)

    def user_list(self) -> list[UserRecord]:
        def read(conn: Connection) -> list[UserRecord]:
            t, g = s.user_tokens.c, s.grants.c
            live = dict(conn.execute(select(t.user, func.count()).where(t.revoked_at.is_(None)).group_by(t.user)).all())
            grants: dict[str, dict[str, str]] = {}
            for user, kind, target, role in conn.execute(select(g.user, g.kind, g.name, g.role).order_by(g.kind, g.name)):
                grants.setdefault(user, {})[f"{kind}:{target}"] = role
            return [UserRecord(name=r.name, admin=bool(r.admin), created_at=r.created_at, created_by=r.created_by,
                               tokens=int(live.get(r.name, 0)), grants=grants.get(r.name, {}))
                    for r in conn.execute(select(s.users).order_by(s.users.c.name))]

        return self._read(read)

    def user_by_token(self, digest: str) -> tuple[str, bool, dict[tuple[str, str], str]] | None:
        """(name, admin, {(kind, target): role}) of the live token with this digest, or None."""

        def read(conn: Connection) -> tuple[str, bool, dict[tuple[str, str], str]] | None:
            t, u, g = s.user_tokens.c, s.users.c, s.grants.c
            row = conn.execute(select(u.name, u.admin).join_from(s.user_tokens, s.users, t.user == u.name)
                               .where(t.digest == digest, t.revoked_at.is_(None))).first()
            if row is None:
                return None
            grants = {(k, n): r for k, n, r in conn.execute(select(g.kind, g.name, g.role).where(g.user == row.name))}
            return row.name, bool(row.admin), grants

        return self._read(read)

    def run_experiments(self, run_ids: Iterable[str]) -> dict[str, str]:
        """The experiment name of each of these runs that exists."""
        ids = list(dict.fromkeys(run_ids))
        r, e = s.runs.c, s.experiments.c
        found: dict[str, str] = {}

        def read(conn: Connection) -> None:
            for i in range(0, len(ids), 500):
                stmt = select(r.id, e.name).join_from(s.runs, s.experiments, r.experiment_id == e.id).where(
                    r.id.in_(ids[i:i + 500]))
                found.update(conn.execute(stmt).all())

        if ids:
            self._read(read)
        return found

    def experiment_names(self) -> dict[int, str]:
        """Every experiment's name by id."""
        e = s.experiments.c
        return dict(self._read(lambda c: c.execute(select(e.id, e.name)).all()))

    @staticmethod
    def _user_row(conn: Connection, name: str) -> Any:
        row = conn.execute(select(s.users).where(s.users.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"there is no user {name!r}; `modelcycle server users ls` lists them")
        return row
