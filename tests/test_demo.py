"""The Level 0 demo trains, tracks and compares real models."""

from __future__ import annotations

import pytest

import modelcycle as mc
from modelcycle import demo
from modelcycle.tracking.client import Client

pytest.importorskip("sklearn")


def test_demo_sweep_is_tracked_and_the_best_run_is_reproducible(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    mc.set_client(client)
    try:
        demo.main()
    finally:
        mc.set_client(None)
    out = capsys.readouterr().out
    runs = client.search_runs(experiment=demo.EXPERIMENT, order_by=["metrics.roc_auc DESC"], as_frame=False)
    assert len(runs) == len(demo.CONFIGS)
    assert all(r.status.value == "FINISHED" and r.metrics["roc_auc"] > 0.9 for r in runs)
    best = client.get_run(runs[0].id)
    assert {d.role for d in best.inputs} == {"train", "test"} and best.context.seed == 42
    assert "Best run" in out and best.id[:8] in out and "To reproduce it" in out


def test_demo_best_model_goes_through_the_gate(client: Client, capsys: pytest.CaptureFixture[str]) -> None:
    from modelcycle.registry.fluent import get_registry

    mc.set_client(client)
    try:
        demo.main()
        demo.main()  # a second sweep: its best model is judged against the champion of the first
        registry = get_registry(client)
        versions = registry.search_model_versions(f"name = '{demo.MODEL_NAME}'")
        verdicts = [registry.verdicts(demo.MODEL_NAME, v.version)[-1] for v in versions]
        champion = mc.load_model(f"models:/{demo.MODEL_NAME}@champion")
    finally:
        mc.set_client(None)
    out = capsys.readouterr().out
    assert [v.version for v in versions] == [2, 1]
    assert all(v["passed"] for v in verdicts), verdicts
    assert "Validation gate" in out and "Promoted" in out
    improvement = next(r for r in verdicts[0]["rules"] if r["rule"].startswith("improvement"))
    assert improvement["baseline"] is not None, "the second version is compared with the first"
    assert champion.version.version == 2 and champion.profile is not None
