"""Tables of the metadata store (SQLAlchemy Core). Change them only together with a migration."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "HEAD_REVISION",
    "alerts",
    "alias_events",
    "artifacts",
    "cycles",
    "datasets",
    "environments",
    "experiments",
    "grants",
    "latest_metrics",
    "metadata",
    "metrics",
    "model_aliases",
    "model_version_tags",
    "model_versions",
    "monitor_windows",
    "params",
    "registered_models",
    "run_inputs",
    "runs",
    "step_cache",
    "tags",
    "user_tokens",
    "users",
    "verdicts",
]

# The newest Alembic revision; a test checks it matches migrations/versions/.
HEAD_REVISION = "0009"

KEY = 250
ID = 32

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(KEY), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the canonical JSON below
    Column("data", Text, nullable=False),
    Column("created_at", Double, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(KEY)),
    Column("status", String(16), nullable=False),
    Column("start_time", Double, nullable=False),
    Column("end_time", Double),
    Column("heartbeat_at", Double),
    Column("parent_id", String(ID)),
    Column("error", Text),
    Column("reproduces", String(ID)),
    Column("git_commit", String(64)),
    Column("git_branch", String(KEY)),
    Column("git_dirty", Boolean),
    Column("git_root", Text),
    Column("command", Text),  # JSON list
    Column("cwd", Text),
    Column("python", String(64)),
    Column("platform", String(KEY)),
    Column("environment_id", String(64), ForeignKey("environments.id")),
    Column("seed", BigInteger),
    Column("session_id", String(ID)),
    Column("session_seq", Integer),
    # [params, tags] as one JSON array, kept by every write beside the params and tags tables: a search page reads
    # it with the run instead of looking up each run's params and tags
    Column("records", Text),
    # the latest metrics as one JSON object, so that a search page is one statement; NULL: not known, '': too large to
    # keep (a search reads those runs' metrics from the table). Kept by PostgreSQL's triggers, on SQLite by modelcycle
    # and emptied by triggers when another writer's row is not in it (migration 0009)
    Column("latest", Text),
    Index(None, "experiment_id", "start_time"),
    Index(None, "status", "heartbeat_at"),
    Index(None, "parent_id"),
)


def _run_fk() -> ForeignKey:
    return ForeignKey("runs.id", ondelete="CASCADE")


params = Table(
    "params",
    metadata,
    Column("run_id", String(ID), _run_fk(), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(ID), _run_fk(), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

# Every point. NULL value means NaN: SQLite cannot store NaN, so both backends use NULL.
metrics = Table(
    "metrics",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(ID), _run_fk(), nullable=False),
    Column("key", String(KEY), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("value", Double),
    Index(None, "run_id", "key", "step"),
)

# The latest point of each metric of each run, so search and sort never scan history.
# Tables keyed by (run_id, …) are clustered on that key in SQLite (WITHOUT ROWID): reading a
# run's records is one B-tree range instead of an index walk plus a table look-up per row.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(ID), _run_fk(), primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("value", Double),
    Index(None, "key", "value"),
    sqlite_with_rowid=False,
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(ID), _run_fk(), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    Index(None, "digest"),
    sqlite_with_rowid=False,
)

datasets = Table(
    "datasets",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("rows", BigInteger),
    Column("columns", Text, nullable=False),  # JSON list of [name, dtype]
    Column("source", Text),
    Column("created_at", Double, nullable=False),
)

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", String(ID), _run_fk(), primary_key=True),
    Column("name", String(KEY), primary_key=True),
    Column("role", String(64), primary_key=True),
    Column("fingerprint", String(64), ForeignKey("datasets.fingerprint"), nullable=False),
    sqlite_with_rowid=False,
)


# --- the model registry ---------------------------------------------------------------------
registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(KEY), primary_key=True),
    Column("created_at", Double, nullable=False),
    Column("description", Text),
)

# A version refers to its run by id only (no foreign key): deleting a run never deletes a version.
model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(KEY), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("run_id", String(ID), nullable=False),
    Column("source", Text, nullable=False),
    Column("artifact_path", String(1024), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("flavour", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("created_by", String(KEY)),
    Column("description", Text),
    Index(None, "run_id"),
    Index(None, "hash"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("name", String(KEY), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(KEY), primary_key=True),
    Column("value", Text, nullable=False),
    sqlite_with_rowid=False,
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(KEY), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(KEY), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", Double, nullable=False),
    sqlite_with_rowid=False,
)

# The audit log: append-only, one row per alias change.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(KEY), nullable=False),
    Column("alias", String(KEY), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("action", String(16), nullable=False),
    Column("actor", String(KEY), nullable=False),
    Column("at", Double, nullable=False),
    Column("reason", Text),
    Column("verdict_id", String(ID)),
    Column("forced", Boolean, nullable=False),
    Index(None, "name", "alias", "id"),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(KEY), nullable=False),
    Column("version", Integer, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("run_id", String(ID)),
    Column("data", Text, nullable=False),  # JSON: the policy, every rule with its evidence
    Index(None, "name", "version"),
)


# --- pipelines ------------------------------------------------------------------------------
# One row per successful step execution worth re-using: the key hashes the step's source, its
# inputs' fingerprints and its parameters; the output is described by its files' sha256.
step_cache = Table(
    "step_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("pipeline", String(KEY), nullable=False),
    Column("step", String(KEY), nullable=False),
    Column("run_id", String(ID), nullable=False),
    Column("output", Text, nullable=False),  # JSON: kind, files {name: sha256}, sizes, fingerprint, items
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Index(None, "pipeline", "step", "created_at"),
)


# --- operations: monitoring and the controller ------------------------------------------------
# A closed window of the prediction log, summarised once: its merged profile and its findings.
monitor_windows = Table(
    "monitor_windows",
    metadata,
    Column("model", String(KEY), primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("seconds", Integer, primary_key=True),
    Column("start", Double, primary_key=True),
    Column("rows", BigInteger, nullable=False),
    Column("sources", String(64), nullable=False),  # fingerprint of the log files read: a late file re-summarises
    Column("profile", LargeBinary),
    Column("summary", Text, nullable=False),  # JSON: versions, quality, drift, prediction drift, performance
    Column("computed_at", Double, nullable=False),
)

# Alert events: one row is raised when a rule's condition starts to hold and resolved when it stops.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("model", String(KEY), nullable=False),
    Column("rule", String(KEY), nullable=False),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("window_start", Double),
    Column("raised_at", Double, nullable=False),
    Column("resolved_at", Double),
    Column("message", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("delivery", Text),  # JSON: how the latest event reached the webhook (event, state, attempts, error, at)
    Index(None, "model", "rule", "state"),
)

# One continuous-training cycle per trigger: the unique key makes a trigger run at most one cycle,
# the lease lets a restarted agent take over a cycle whose agent died.
cycles = Table(
    "cycles",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("project", String(KEY), nullable=False),
    Column("trigger", String(KEY), nullable=False),
    Column("trigger_key", String(KEY), nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner", String(KEY)),
    Column("lease_until", Double),
    Column("started_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("finished_at", Double),
    Column("alert_id", String(ID)),
    Column("run_id", String(ID)),
    Column("model", String(KEY)),
    Column("version", Integer),
    Column("verdict_id", String(ID)),
    Column("alias_event_id", BigInteger),
    Column("detail", Text, nullable=False),  # JSON: what the trigger saw, why not promoted, errors
    Index(None, "project", "trigger_key", unique=True),
    Index(None, "project", "started_at"),
)

# The team server's users: a token is kept only as the sha256 of its text (tokens are 256 random bits, so a fast hash is
# enough); a grant gives a role on one experiment or registered model, or on all of them ("*").
users = Table(
    "users",
    metadata,
    Column("name", String(KEY), primary_key=True),
    Column("admin", Boolean, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("created_by", String(KEY)),
)

user_tokens = Table(
    "user_tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user", String(KEY), ForeignKey("users.name", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
)

grants = Table(
    "grants",
    metadata,
    Column("user", String(KEY), ForeignKey("users.name", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # experiment | model
    Column("name", String(KEY), primary_key=True),  # a name, or "*" for all
    Column("role", String(16), nullable=False),  # read | write | manage
)
