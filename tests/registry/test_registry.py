"""The registry on SQLite and PostgreSQL: versions, aliases and their audit log, gated promotion, loading by URI."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.errors import ConflictError, GateError, InvalidInputError, ModelIntegrityError, NotFoundError
from modelcycle.evaluation import Policy, check_policy, evaluate_model
from modelcycle.registry import Registry
from modelcycle.settings import Settings
from modelcycle.tracking.client import Client


def data(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = pd.Series((X["a"] + 0.3 * rng.normal(size=n) > 0).astype(int), name="y")
    return X, y


def logged(client: Client, C: float = 1.0):
    from sklearn.linear_model import LogisticRegression

    X, y = data()
    with client.start_run(experiment="churn"):
        return client.log_model(LogisticRegression(C=C).fit(X, y), reference_data=X)


@pytest.fixture
def registry(any_client: Client) -> Registry:
    return Registry(any_client)


def test_versions_count_up_per_model(registry: Registry) -> None:
    first = registry.register_model(logged(registry.client).uri, "churn", description="baseline", tags={"team": "risk"})
    second = registry.register_model(logged(registry.client, C=0.1), "churn")
    other = registry.register_model(logged(registry.client), "fraud")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.description == "baseline" and first.tags == {"team": "risk"}
    assert first.source.startswith("runs:/") and len(first.hash) == 64 and first.flavour == "sklearn"
    assert registry.get_model_version("churn", "latest").version == 2
    assert [v.version for v in registry.search_model_versions("name = 'churn'")] == [2, 1]
    assert [v.name for v in registry.search_model_versions("tags.team = 'risk'")] == ["churn"]
    assert len(registry.search_model_versions()) == 3
    assert {m["name"]: m["versions"] for m in registry.list_models()} == {"churn": 2, "fraud": 1}


def test_aliases_move_with_an_audit_log(registry: Registry) -> None:
    for C in (1.0, 0.5, 0.1):
        registry.register_model(logged(registry.client, C), "churn")
    registry.set_alias("churn", "champion", 1, reason="first")
    registry.set_alias("churn", "champion", 2, reason="better")
    registry.set_alias("churn", "champion", 3)
    assert registry.get_model_version("churn", "champion").version == 3
    back = registry.rollback("churn", "champion")
    assert (back.from_version, back.to_version, back.action) == (3, 2, "rollback")
    again = registry.rollback("churn", "champion", reason="still bad")
    assert (again.from_version, again.to_version) == (2, 1)
    with pytest.raises(InvalidInputError, match="no earlier version"):
        registry.rollback("churn", "champion")
    log = registry.history("churn")
    assert [(e.action, e.from_version, e.to_version) for e in log] == [
        ("set", None, 1), ("set", 1, 2), ("set", 2, 3), ("rollback", 3, 2), ("rollback", 2, 1)]
    assert log[1].reason == "better" and log[4].reason == "still bad" and "@" in log[0].actor
    registry.delete_alias("churn", "champion", reason="retired")
    with pytest.raises(NotFoundError, match="has no alias 'champion'"):
        registry.get_model_version("churn", "champion")
    assert registry.history("churn")[-1].action == "delete"


def test_bad_moves_are_refused_and_leave_the_log_unchanged(registry: Registry) -> None:
    registry.register_model(logged(registry.client), "churn")
    registry.set_alias("churn", "champion", 1)
    before = registry.history("churn")
    with pytest.raises(NotFoundError, match="has no version 7"):
        registry.set_alias("churn", "champion", 7)
    with pytest.raises(NotFoundError, match="has no version 7"):
        registry.promote("churn", 7, force=True)
    with pytest.raises(InvalidInputError, match="not a valid alias"):
        registry.set_alias("churn", "champ ion!", 1)
    with pytest.raises(InvalidInputError, match="reserved"):
        registry.set_alias("churn", "latest", 1)
    with pytest.raises(InvalidInputError, match="not a valid model name"):
        registry.register_model(logged(registry.client).uri, "bad/name")
    with pytest.raises(NotFoundError, match="no registered model named 'nope'"):
        registry.get_model_version("nope", 1)
    assert registry.history("churn") == before


def _verdict(registry: Registry, name: str, version: int, policy: dict):
    X, y = data(seed=1)
    model = registry.load_model(f"models:/{name}/{version}")
    return check_policy(Policy.from_dict(policy), evaluate_model(model, X.assign(y=y)))


def test_promotion_needs_a_passing_verdict(registry: Registry) -> None:
    registry.register_model(logged(registry.client), "churn")
    with pytest.raises(GateError, match="no verdict"):
        registry.promote("churn", 1)
    failing = _verdict(registry, "churn", 1, {"thresholds": {"roc_auc": ">= 0.999"}})
    with pytest.raises(GateError, match="roc_auc"):
        registry.promote("churn", 1, verdict=failing)
    assert registry.history("churn") == []
    forced = registry.promote("churn", 1, verdict=failing, force=True, reason="hotfix")
    assert forced.forced and forced.verdict_id == failing.id and "hotfix" in forced.reason and "forced" in forced.reason
    passing = _verdict(registry, "churn", 1, {"thresholds": {"roc_auc": ">= 0.5"}})
    event = registry.promote("churn", 1, alias="stable", verdict=passing)
    assert not event.forced and event.verdict_id == passing.id
    stored = registry.verdicts("churn", 1)
    assert [v.passed for v in stored] == [False, True] and stored[1].rules[0]["rule"] == "threshold roc_auc"
    registry.register_model(logged(registry.client, 0.2), "churn")
    with pytest.raises(GateError, match="is for churn/1, not churn/2"):
        registry.promote("churn", 2, verdict=passing)


def test_load_by_alias_is_cached_and_follows_moves(registry: Registry) -> None:
    X, _ = data()
    registry.register_model(logged(registry.client, 1.0), "churn")
    registry.register_model(logged(registry.client, 0.001), "churn")
    registry.set_alias("churn", "champion", 1)
    first = registry.load_model("models:/churn@champion")
    again = registry.load_model("models:/churn@champion")
    assert again.raw is first.raw and again.version.version == 1
    registry.set_alias("churn", "champion", 2)
    moved = registry.load_model("models:/churn@champion")
    assert moved.version.version == 2 and moved.raw is not first.raw
    assert not np.allclose(moved.predict_proba(X), first.predict_proba(X))
    by_run = registry.load_model(registry.get_model_version("churn", 2).source)
    np.testing.assert_allclose(by_run.predict_proba(X), moved.predict_proba(X))


def test_a_corrupted_stored_model_file_is_refused_by_name(registry: Registry) -> None:
    version = registry.register_model(logged(registry.client), "churn")
    run = registry.client.get_run(version.run_id)
    digest = next(a.digest for a in run.artifacts if a.path == "model/model.skops")
    store_root = Path(registry.client.settings.artifact_uri.removeprefix("file://"))
    blob = next(store_root.rglob(digest))
    blob.chmod(0o644)
    raw = bytearray(blob.read_bytes())
    raw[10] ^= 0xFF
    blob.write_bytes(bytes(raw))
    with pytest.raises(ModelIntegrityError, match=r"model\.skops .*changed after the model was saved"):
        registry.load_model("models:/churn/1")


def test_a_run_with_registered_versions_cannot_be_deleted(registry: Registry) -> None:
    version = registry.register_model(logged(registry.client), "churn")
    with pytest.raises(ConflictError, match="churn/1"):
        registry.client.delete_run(version.run_id)
    assert registry.client.get_run(version.run_id).id == version.run_id


def test_runs_uri_errors_are_clear(registry: Registry) -> None:
    lm = logged(registry.client)
    with pytest.raises(NotFoundError, match="has no model at 'nothing'; its models: model"):
        registry.register_model(f"runs:/{lm.run_id}/nothing", "churn")
    with pytest.raises(InvalidInputError, match="runs:/ or models:/"):
        registry.load_model("s3://bucket/model")
    with pytest.raises(InvalidInputError, match="give a version number"):
        registry.load_model("models:/churn/first")


def test_short_forms_name_registered_models_and_an_existing_folder_wins(registry: Registry, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """churn@champion and churn/2 are models:/churn@champion and models:/churn/2, wherever a model is named; a folder of that name wins."""
    from modelcycle.models import save_model
    from modelcycle.registry import parse_model_uri

    registry.register_model(logged(registry.client, 1.0), "churn")
    registry.register_model(logged(registry.client, 0.001), "churn")
    registry.set_alias("churn", "champion", 1)
    assert registry.load_model("churn@champion").version.version == 1
    assert registry.load_model("churn/2").version.version == 2 and registry.load_model("churn/latest").version.version == 2
    assert registry.register_model("churn@champion", "copy").source == registry.get_model_version("churn", 1).source
    assert str(parse_model_uri("churn@champion")) == "models:/churn@champion"
    assert parse_model_uri("out/model").kind == "path", "a folder path that is no model's short form stays a path"
    with pytest.raises(NotFoundError, match=r"'nowhere/model' is neither a model package folder nor a registered model; give NAME@ALIAS"):
        registry.load_model("nowhere/model")
    with pytest.raises(InvalidInputError, match="not a valid alias"):
        registry.load_model("churn@no way")
    monkeypatch.chdir(tmp_path)
    X, y = data()
    from sklearn.linear_model import LinearRegression

    save_model(LinearRegression().fit(X, y), tmp_path / "churn@champion", reference_data=X)
    local = registry.load_model("churn@champion")
    assert local.version is None and local.flavour == "sklearn", "the local package folder of that name wins"


def _register(home: str, uri: str, out: multiprocessing.Queue) -> None:
    client = Client(Settings.for_home(home, capture=False))
    out.put(Registry(client).register_model(uri, "churn").version)
    client.close()


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    client = Client(Settings.for_home(tmp_path / "home", capture=False))
    uri = logged(client).uri
    client.flush()
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_register, args=(str(tmp_path / "home"), uri, out)) for _ in range(6)]
    for p in procs:
        p.start()
    versions = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert versions == [1, 2, 3, 4, 5, 6]
    client.close()


def test_a_verdict_holds_only_against_the_champion_it_was_compared_with(registry: Registry) -> None:
    """Two people validate candidates while there is no champion; the first promotes. The second verdict passed
    "with no champion yet", so promoting with it now would skip the comparison with the new champion: refused."""
    import modelcycle as mc

    X, y = data(seed=1)
    labelled = X.assign(y=y)
    policy = {"thresholds": {"roc_auc": ">= 0.5"}, "improvement": {"metric": "roc_auc", "over": "champion", "min_delta": 0.0}}
    for C in (1.0, 0.0001):
        registry.register_model(logged(registry.client, C), "churn")
    mc.set_client(registry.client)
    try:
        first = mc.validate_model("models:/churn/1", labelled, policy)
        second = mc.validate_model("models:/churn/2", labelled, policy)
        assert first.passed and second.passed and (second.baseline_alias, second.baseline_version) == ("champion", None)
        registry.promote("churn", 1)  # the first user, with the stored verdict
        with pytest.raises(GateError, match=r"compared it with champion when that was no version, and champion is version 1 now"):
            registry.promote("churn", 2)
        with pytest.raises(GateError, match="promoted since"):
            registry.promote("churn", 2, verdict=second)
        assert registry.get_model_version("churn", "champion").version == 1
        again = mc.validate_model("models:/churn/2", labelled, policy)  # judged against version 1 this time
        assert again.baseline_version == 1 and "(version 1)" in (again.baseline or "")
        forced = registry.promote("churn", 2, verdict=second, force=True, reason="on purpose")
        assert forced.forced and "promoted since" in forced.reason and "on purpose" in forced.reason
    finally:
        mc.set_client(None)


@pytest.mark.parametrize("version", ["²", "١", "99999999999999999999999", "0", "-1"])
def test_versions_are_plain_numbers(version: str) -> None:
    from modelcycle.registry import parse_model_uri

    with pytest.raises(InvalidInputError, match="give a version number"):
        parse_model_uri(f"models:/churn/{version}")
    if version not in ("²", "-1"):  # the others read as a version, not as a local path
        with pytest.raises(InvalidInputError, match="give a version number"):
            parse_model_uri(f"churn/{version}")
