"""The team server: one URL and a token instead of the database's password and the object store's keys."""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):  # FastAPI is imported only when the server is made
    if name == "create_app":
        from modelcycle.server.app import create_app

        return create_app
    raise AttributeError(name)
