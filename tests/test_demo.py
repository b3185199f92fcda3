"""The demos: the Level 0 sweep trains, tracks and compares real models; the loop demo closes the loop."""

from __future__ import annotations

import pytest

import modelcycle as mc
from modelcycle.demo import level0 as demo
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
    assert all(v.passed for v in verdicts), verdicts
    assert "Validation gate" in out and "Promoted" in out
    improvement = next(r for r in verdicts[0].rules if r["rule"].startswith("improvement"))
    assert improvement["baseline"] is not None, "the second version is compared with the first"
    assert champion.version.version == 2 and champion.profile is not None


@pytest.mark.slow
def test_the_loop_demo_closes_the_loop_on_a_busy_machine(client: Client, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's loop with a CPU-burning process beside it: drift detected, retrained on labelled production traffic,
    gated on rows from after the change, promoted, served, and live performance recovered."""
    import subprocess
    import sys

    pytest.importorskip("uvicorn")
    from modelcycle.demo import loop

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    mc.set_client(client)
    try:
        out = loop.main(tmp_path / "project")
    finally:
        mc.set_client(None)
        burner.kill()
        burner.wait()
    printed = capsys.readouterr().out
    assert out["closed"] and out["first"].state == "done" and out["first"].version == 1
    retrain, newest = out["retrain"], out["newest"]
    assert retrain is not None and retrain.trigger in ("drift", "performance") and retrain.started_at > out["drift_at"]
    assert not [c for c in out["cycles"] if c.trigger in ("drift", "performance") and c.started_at < out["drift_at"]], \
        "no retraining before the drift (no false alarm)"
    versions_after = {v for at, v, _ in out["served"] if at > newest.finished_at + 2}
    assert versions_after == {str(newest.version)}, "the server swapped to the retrained model"
    windows = [w for w in out["report"].windows if w.rows >= 400 and "roc_auc" in w.metrics]
    before = [w.metrics["roc_auc"] for w in windows if w.end <= out["drift_at"]]
    decayed = [w.metrics["roc_auc"] for w in windows if w.start >= out["drift_at"] and w.version == 1]
    assert before and decayed and out["after"]
    assert min(before) > 0.75 and max(decayed) < 0.72 and sum(out["after"]) / len(out["after"]) >= 0.75
    assert any(w.drift and w.drift["dataset_drift"] for w in windows if w.start >= out["drift_at"])
    assert [link["step"] for link in out["lineage"]["chain"]][:5] == ["trigger", "pipeline run", "candidate", "verdict", "alias move"]
    registry = __import__("modelcycle.registry", fromlist=["Registry"]).Registry(client)
    verdict = registry.verdicts("churn-demo", retrain.version)[-1]
    assert verdict.baseline_alias == "champion" and verdict.baseline_version is not None, "the verdict names the champion"
    assert "predicted after the change began" in retrain.detail["gate_data"], "the gate judged rows from after the change"
    page = out["html"].read_text()
    assert "<svg" in page and "Input drift" in page and "Live performance" in page
    assert "The loop closed" in printed and "now answers with version" in printed and "labelled predictions" in printed


@pytest.mark.slow
def test_the_loop_demo_fails_loudly_when_the_loop_does_not_close(client: Client, tmp_path) -> None:
    """Stopped a few seconds after the change, nothing can have been detected: DemoFailed names that stage."""
    pytest.importorskip("uvicorn")
    from modelcycle.demo import loop

    mc.set_client(client)
    try:
        with pytest.raises(loop.DemoFailed, match="The change was not detected: no drift or performance alert") as e:
            loop.main(tmp_path / "project", seconds_before=2, max_seconds_after=1)
    finally:
        mc.set_client(None)
    assert e.value.result["closed"] is False and e.value.result["first"].state == "done"
