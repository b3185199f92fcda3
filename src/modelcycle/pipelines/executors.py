"""Where steps run: threads on this machine, or a Dask cluster (a LocalCluster we start, or a scheduler's address).

On Dask, a step runs in a worker process that opens the same stores from their URIs, reads its
inputs from the artifact store, logs into the step's run and writes its output back; only
references travel through the scheduler, so workers on other machines need nothing but the URIs.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelcycle._deps import require
from modelcycle.errors import ConfigurationError, InvalidInputError
from modelcycle.pipelines.materialize import Stored

if TYPE_CHECKING:
    from modelcycle.pipelines.core import Node
    from modelcycle.tracking.client import Client
    from modelcycle.tracking.run import ActiveRun

__all__ = ["DaskExecutor", "LocalExecutor", "dask_client", "make_executor"]


class LocalExecutor:
    """Ready steps run concurrently in threads (NumPy, pandas and I/O release the GIL)."""

    name = "local"
    local = True

    def __init__(self, client: Client, max_workers: int | None = None):
        self.client = client
        self.pool = cf.ThreadPoolExecutor(max_workers=max_workers or min(8, os.cpu_count() or 1), thread_name_prefix="modelcycle-step")

    def submit(self, node: Node, run: ActiveRun, kwargs: dict[str, Any] | None, components: dict[str, Any],
               outputs: dict[str, Stored], trusts: dict[str, Any] | None = None) -> cf.Future:
        from modelcycle.pipelines.engine import run_step

        return self.pool.submit(run_step, self.client, run, node, kwargs or {}, components, True)

    def wait(self, futures: list[Any], timeout: float | None) -> set[Any]:
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return done

    def outcome(self, future: Any) -> Any:
        return future.result()

    def abandon(self, future: Any) -> None:
        future.cancel()  # a thread cannot be stopped; its late result is ignored

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def dask_client(address: str | None = None, n_workers: int = 2) -> Any:
    """A ``distributed.Client``: on ``address`` (``dask://host:port`` or ``tcp://…``), else on this process's LocalCluster.

    The LocalCluster (``n_workers`` processes, one thread each) listens on 127.0.0.1 only, has no
    dashboard, is started on first use and kept until the process exits.
    """
    distributed = require("distributed", "executor='dask'")
    DaskClient, LocalCluster = distributed.Client, distributed.LocalCluster
    if address:
        target = "tcp://" + address.split("://", 1)[1] if address.startswith("dask://") else address
        try:
            return DaskClient(target, timeout="10s")
        except OSError as e:
            raise ConfigurationError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    with _shared_lock:
        cluster = _shared.get(n_workers)
        if cluster is None or cluster.status.name in ("closing", "closed", "failed"):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=40)
            _shared[n_workers] = cluster
            if len(_shared) == 1:
                atexit.register(_close_shared)
    return DaskClient(cluster)


# One LocalCluster per process, started on first use and kept for later runs (and tuning), closed at exit:
# starting worker processes costs a second or two, which a session of runs pays once.
_shared: dict[int, Any] = {}
_shared_lock = threading.Lock()


def _close_shared() -> None:
    for cluster in list(_shared.values()):
        try:
            cluster.close()
        except Exception:
            pass
    _shared.clear()


def _remote_step(settings: dict[str, Any], node: Node, run_id: str, arguments: dict[str, Any], outputs: dict[str, dict],
                 components: dict[str, Any], trusts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runs in a Dask worker: open the stores, read the inputs, run the step in its run, store the output."""
    from modelcycle.pipelines.core import OutputRef
    from modelcycle.pipelines.engine import _index, _resolve, run_step
    from modelcycle.pipelines.materialize import load_output
    from modelcycle.tracking import fluent

    client = worker_client(settings)
    fluent.set_client(client)  # mc.log_metric inside the step logs into the step's run
    stored = {name: Stored.from_dict(d) for name, d in outputs.items()}
    loaded: dict[str, Any] = {}

    def value_of(ref: OutputRef) -> Any:
        if ref.node not in loaded:
            loaded[ref.node] = load_output(stored[ref.node], client.artifact_store.download, (trusts or {}).get(ref.node))
        return _index(loaded[ref.node], ref.path)

    kwargs = {arg: _resolve(v, value_of) for arg, v in arguments.items()}
    run = client.resume_run(run_id)
    outcome = run_step(client, run, node, kwargs, components, keep_value=False)
    client.flush()
    return {"ok": outcome.ok, "stored": outcome.stored.to_dict() if outcome.stored else None, "duration": outcome.duration,
            "error": outcome.error}


_WORKER_CLIENTS: dict[str, Any] = {}


def worker_settings(settings: Any, remote: bool) -> dict[str, Any]:
    """What a task carries about the stores. To a remote cluster: only ``Settings.shareable()`` (no password, key or
    token passes through the scheduler; the worker reads its own from its environment). To this process's
    LocalCluster, whose workers are on this machine: the settings themselves."""
    from dataclasses import asdict

    if remote:
        return {"shared": settings.shareable()}
    return {"inline": {k: (str(v) if k == "home" else v) for k, v in asdict(settings).items()}}


def worker_client(payload: dict[str, Any]) -> Any:
    """In a Dask worker: the Client for the stores ``payload`` names, made once per worker process."""
    from modelcycle.settings import Settings
    from modelcycle.tracking.client import Client

    key = repr(sorted((k, repr(v)) for k, v in next(iter(payload.values())).items()))
    client = _WORKER_CLIENTS.get(key)
    if client is None:
        if "shared" in payload:
            settings = Settings.on_worker(payload["shared"])
        else:
            inline = payload["inline"]
            settings = Settings(**{**inline, "home": Path(inline["home"])})
        client = _WORKER_CLIENTS[key] = Client(settings)
    return client


class DaskExecutor:
    name = "dask"
    local = False

    def __init__(self, client: Client, address: str | None = None):
        self.client = client
        self.address = address
        self.dask = dask_client(address)
        self._register_main()

    @staticmethod
    def _register_main() -> None:
        """Steps defined in a script (not an installed module) are sent to workers by value."""
        try:
            import cloudpickle
        except ImportError:  # pragma: no cover - distributed depends on it
            return
        for module in list(sys.modules.values()):
            if getattr(module, "__modelcycle_pipeline_file__", False):
                try:
                    cloudpickle.register_pickle_by_value(module)
                except ValueError:
                    pass

    def submit(self, node: Node, run: ActiveRun, kwargs: dict[str, Any] | None, components: dict[str, Any],
               outputs: dict[str, Stored], trusts: dict[str, Any] | None = None) -> Any:
        self.client.flush()  # the worker logs into this run: it must exist in the store
        needed = {u: outputs[u].to_dict() for u in node.upstream}
        settings = worker_settings(self.client.settings, remote=self.address is not None)
        return self.dask.submit(_remote_step, settings, node, run.id, node.arguments, needed, components, trusts or {}, pure=False,
                                key=f"{node.name}-{run.id[:8]}")

    def wait(self, futures: list[Any], timeout: float | None) -> set[Any]:
        from distributed import wait as dask_wait

        try:
            done, _ = dask_wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        except Exception as e:  # distributed raises its own TimeoutError type in some versions
            if type(e).__name__ == "TimeoutError":
                return set()
            raise
        return set(done)

    def outcome(self, future: Any) -> Any:
        from modelcycle.pipelines.engine import Outcome

        try:
            out = future.result()
        except Exception as e:  # the worker died, or the task could not be sent
            return Outcome(False, None, 0.0, f"{type(e).__name__}: {e}")
        return Outcome(out["ok"], Stored.from_dict(out["stored"]) if out["stored"] else None, out["duration"], out["error"])

    def abandon(self, future: Any) -> None:
        future.cancel()

    def close(self) -> None:
        self.dask.close()  # the shared LocalCluster stays up for the next run; it closes at exit


def make_executor(spec: str | None, client: Client) -> Any:
    if spec in (None, "", "local"):
        return LocalExecutor(client)
    if spec == "dask":
        return DaskExecutor(client)
    if isinstance(spec, str) and spec.startswith(("dask://", "tcp://")):
        return DaskExecutor(client, spec)
    raise InvalidInputError(f"unknown executor {spec!r}; use 'local', 'dask' or 'dask://host:port'")
