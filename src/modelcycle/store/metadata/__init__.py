"""The metadata store: runs, experiments and their records in SQLite or PostgreSQL."""

from __future__ import annotations

from typing import Any

from modelcycle.store.metadata.base import MetadataStore, NewRun, WriteBatch

__all__ = ["MetadataStore", "NewRun", "SqlMetadataStore", "WriteBatch"]


def __getattr__(name: str) -> Any:
    if name == "SqlMetadataStore":  # imports SQLAlchemy: only when asked for
        from modelcycle.store.metadata.sql import SqlMetadataStore

        return SqlMetadataStore
    raise AttributeError(name)
