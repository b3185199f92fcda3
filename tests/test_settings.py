"""Settings: where the store is found, and clear errors for values that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcycle.errors import ConfigurationError
from modelcycle.settings import Settings, find_home


def test_home_is_found_by_walking_up_like_git(tmp_path: Path) -> None:
    (tmp_path / ".modelcycle").mkdir()
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    s = Settings.from_env({}, cwd=deep)
    assert s.home == (tmp_path / ".modelcycle").resolve()
    assert s.store_uri == f"sqlite:///{s.home / 'modelcycle.db'}"
    assert s.artifact_uri == str(s.home / "artifacts")


def test_without_one_the_current_folder_gets_it(tmp_path: Path) -> None:
    assert find_home(tmp_path) == tmp_path.resolve() / ".modelcycle"


def test_modelcycle_home_names_the_folder_directly(tmp_path: Path) -> None:
    s = Settings.from_env({"MODELCYCLE_HOME": str(tmp_path / "x")}, cwd=Path("/"))
    assert s.home == (tmp_path / "x").resolve()


def test_store_and_artifact_uris_can_be_set_separately(tmp_path: Path) -> None:
    s = Settings.from_env({
        "MODELCYCLE_HOME": str(tmp_path),
        "MODELCYCLE_STORE_URI": "postgresql+psycopg://u@localhost/db",
        "MODELCYCLE_ARTIFACT_URI": "s3://bucket/prefix",
        "MODELCYCLE_EXPERIMENT": "churn",
        "MODELCYCLE_CAPTURE": "no",
    })
    assert (s.store_uri, s.artifact_uri, s.experiment, s.capture) == (
        "postgresql+psycopg://u@localhost/db", "s3://bucket/prefix", "churn", False)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MODELCYCLE_HEARTBEAT_TIMEOUT": "soon"}, "is not a number"),
        ({"MODELCYCLE_HEARTBEAT_TIMEOUT": "-1"}, "must be at least"),
        ({"MODELCYCLE_HEARTBEAT_TIMEOUT": "5", "MODELCYCLE_HEARTBEAT_INTERVAL": "10"}, "must be shorter"),
        ({"MODELCYCLE_CAPTURE": "maybe"}, "yes/no"),
        ({"MODELCYCLE_SQLITE_SYNC": "sometimes"}, "'normal' or 'full'"),
        ({"MODELCYCLE_TRACKING_TOKEN": "mc_ana"}, "MODELCYCLE_TRACKING_URI is not"),  # else records would stay local
    ],
)
def test_bad_values_are_named(tmp_path: Path, env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        Settings.from_env({"MODELCYCLE_HOME": str(tmp_path), **env})


def test_heartbeat_interval_follows_the_timeout(tmp_path: Path) -> None:
    s = Settings.from_env({"MODELCYCLE_HOME": str(tmp_path), "MODELCYCLE_HEARTBEAT_TIMEOUT": "2"})
    assert s.heartbeat_timeout == 2 and s.heartbeat_interval == 0.5


def test_a_token_with_the_servers_url_is_used(tmp_path: Path) -> None:
    s = Settings.from_env({"MODELCYCLE_HOME": str(tmp_path), "MODELCYCLE_TRACKING_TOKEN": "mc_ana",
                           "MODELCYCLE_TRACKING_URI": "http://10.0.0.5:5000/"})
    assert s.store_uri == s.artifact_uri == "http://10.0.0.5:5000" and s.tracking_token == "mc_ana"
