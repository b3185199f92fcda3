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
    assert all(v["passed"] for v in verdicts), verdicts
    assert "Validation gate" in out and "Promoted" in out
    improvement = next(r for r in verdicts[0]["rules"] if r["rule"].startswith("improvement"))
    assert improvement["baseline"] is not None, "the second version is compared with the first"
    assert champion.version.version == 2 and champion.profile is not None


@pytest.mark.slow
def test_the_loop_demo_detects_the_drift_retrains_and_recovers(client: Client, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("uvicorn")
    from modelcycle.demo import loop

    mc.set_client(client)
    try:
        out = loop.main(tmp_path / "project")
    finally:
        mc.set_client(None)
    printed = capsys.readouterr().out
    assert out["first"]["state"] == "done" and out["first"]["version"] == 1
    retrain = out["retrain"]
    assert retrain is not None and retrain["trigger"] in ("drift", "performance") and retrain["started_at"] > out["drift_at"]
    assert not [c for c in out["cycles"] if c["trigger"] in ("drift", "performance") and c["started_at"] < out["drift_at"]], \
        "no retraining before the drift (no false alarm)"
    versions_after = {v for at, v, _ in out["served"] if at > retrain["finished_at"] + 2}
    assert str(retrain["version"]) in versions_after and "1" not in versions_after, "the server swapped to the retrained model"
    windows = [w for w in out["report"].windows if w.rows >= 400 and "roc_auc" in w.metrics]
    before = [w.metrics["roc_auc"] for w in windows if w.end <= out["drift_at"]]
    decayed = [w.metrics["roc_auc"] for w in windows if w.start >= out["drift_at"] and w.version == 1]
    recovered = [w.metrics["roc_auc"] for w in windows if w.start > retrain["finished_at"] and w.version and w.version > 1]
    assert before and decayed and recovered
    assert min(before) > 0.75 and max(decayed) < 0.72 and sum(recovered) / len(recovered) > 0.75
    assert any(w.drift and w.drift["dataset_drift"] for w in windows if w.start >= out["drift_at"])
    assert [link["step"] for link in out["lineage"]["chain"]][:5] == ["trigger", "pipeline run", "candidate", "verdict", "alias move"]
    page = out["html"].read_text()
    assert "<svg" in page and "Input drift" in page and "Live performance" in page
    assert "Summary" in printed and "server" in printed and "now answers with version" in printed
