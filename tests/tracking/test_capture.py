"""Reproducibility capture in a real git repository: commit, branch, dirty flag and the diff."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelcycle.settings import Settings
from modelcycle.tracking.capture import GitProbe, process_info
from modelcycle.tracking.client import DIFF_ARTIFACT, Client
from tests.conftest import git


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo({"train.py": "print('v1')\n"})


def test_clean_tree(repo: Path) -> None:
    state = GitProbe(repo).state()
    assert state is not None
    assert state.commit == git(repo, "rev-parse", "HEAD")
    assert state.branch == "main"
    assert not state.dirty and state.diff == b""


def test_changes_and_untracked_files_are_in_the_diff(repo: Path) -> None:
    (repo / "train.py").write_text("print('v2')\n")
    (repo / "features.py").write_text("X = 1\n")
    (repo / "big.bin").write_bytes(b"\0" * (2 << 20))
    state = GitProbe(repo).state()
    assert state.dirty
    assert b"+print('v2')" in state.diff
    assert b"features.py" in state.diff and b"+X = 1" in state.diff
    assert state.skipped == ("big.bin",), "files over 1 MB are left out and named"
    # the diff applies on a clean checkout of the commit
    clone = repo.parent / "clone"
    git(repo, "worktree", "add", "-q", "--detach", str(clone), state.commit)
    patch = repo.parent / "p.diff"
    patch.write_bytes(state.diff)
    git(clone, "apply", str(patch))
    assert (clone / "train.py").read_text() == "print('v2')\n"
    assert (clone / "features.py").read_text() == "X = 1\n"


def test_state_is_cached_until_a_file_changes(repo: Path) -> None:
    probe = GitProbe(repo)
    first = probe.state()
    assert probe.state() is first, "nothing changed: no new git call"
    (repo / "train.py").write_text("print('changed size')\n")
    second = probe.state()
    assert second is not first and second.dirty
    (repo / "new.py").write_text("y = 2\n")
    third = probe.state()
    assert b"new.py" in third.diff


def test_store_folder_inside_the_repo_is_not_captured(repo: Path) -> None:
    home = repo / ".modelcycle"
    home.mkdir()
    (home / "modelcycle.db").write_bytes(b"x" * 100)
    state = GitProbe(repo, exclude=home).state()
    assert not state.dirty


def test_outside_git_there_is_no_state(tmp_path: Path) -> None:
    assert GitProbe(tmp_path).state() is None


def test_runs_record_code_version_command_and_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    (repo / "train.py").write_text("print('dirty')\n")
    client = Client(Settings.for_home(repo / ".modelcycle"))
    with client.start_run() as a:
        pass
    with client.start_run() as b:
        pass
    ra, rb = client.get_run(a.id), client.get_run(b.id)
    ctx = ra.context
    assert ctx.git_commit == git(repo, "rev-parse", "HEAD") and ctx.git_branch == "main" and ctx.git_dirty
    assert ctx.cwd == "."
    assert ctx.python == sys.version.split()[0]
    env = client.get_environment(ra)
    assert "pytest" in env["packages"] and env["python"] == ctx.python
    diff_a = next(x for x in ra.artifacts if x.path == DIFF_ARTIFACT)
    diff_b = next(x for x in rb.artifacts if x.path == DIFF_ARTIFACT)
    assert diff_a.digest == diff_b.digest, "identical diffs are stored once"
    assert b"print('dirty')" in client.read_artifact(a.id, DIFF_ARTIFACT)
    assert rb.context.environment_id == ctx.environment_id
    assert (rb.context.session_id, rb.context.session_seq) == (ctx.session_id, ctx.session_seq + 1)
    client.close()


def test_process_info_is_computed_once() -> None:
    assert process_info() is process_info()


def _inotify_fds() -> int:
    import os

    count = 0
    for fd in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else []:
        try:
            count += "inotify" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed since
            pass
    return count


@pytest.fixture(params=["inotify", "stat"])
def watch_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of noticing a change: kernel notifications, and stat-ing every file where they are missing."""
    from modelcycle.tracking import capture

    if request.param == "stat":
        monkeypatch.setattr(capture._Watcher, "create", classmethod(lambda cls: None))
    elif capture._Watcher.create() is None:
        pytest.skip("inotify is not available here")
    return request.param


def test_every_change_git_would_report_is_seen(make_repo, watch_mode: str) -> None:
    repo = make_repo({"train.py": "print('v1')\n", "src/deep/features.py": "A = 1\n", ".gitignore": "outputs/\n*.log\n"})
    probe = GitProbe(repo)
    first = probe.state()
    assert first is not None and not first.dirty and probe.state() is first
    (repo / "src" / "deep" / "features.py").write_text("A = 2\n")  # same size, in place, deep in the tree
    edited = probe.state()
    assert edited is not first and edited.dirty and b"A = 2" in edited.diff
    (repo / "src" / "new_folder").mkdir()
    (repo / "src" / "new_folder" / "extra.py").write_text("B = 1\n")
    assert b"extra.py" in probe.state().diff, "an untracked file in a new folder"
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two")
    committed = probe.state()
    assert committed.commit != first.commit and not committed.dirty
    git(repo, "checkout", "-q", "-b", "experiment")
    assert probe.state().branch == "experiment"
    (repo / "train.log").write_text("epoch 1\n")  # ignored by git
    seen = probe.state()
    assert not seen.dirty
    for epoch in range(3):  # writing an ignored file again is not a change: no new git call
        (repo / "train.log").write_text(f"epoch {epoch}\n")
        assert probe.state() is seen or watch_mode == "stat"


def test_a_commit_in_a_linked_worktree_is_seen(make_repo, tmp_path: Path, watch_mode: str) -> None:
    repo = make_repo({"train.py": "print('v1')\n"})
    tree = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(tree))
    probe = GitProbe(tree)
    first = probe.state()
    assert first.branch == "side"
    (tree / "train.py").write_text("print('v2')\n")
    git(tree, "commit", "-qam", "on the side")
    second = probe.state()
    assert second.commit != first.commit and not second.dirty


def test_probes_shared_in_a_process_hold_few_watches(make_repo, tmp_path: Path) -> None:
    from modelcycle.tracking.capture import _SHARED_PROBES

    repo = make_repo({"train.py": "print('v1')\n"})
    before = _inotify_fds()
    for i in range(3 * _SHARED_PROBES):  # as clients with stores in other folders ask for theirs
        assert GitProbe.shared(repo, exclude=tmp_path / f"home{i}").state() is not None
    assert _inotify_fds() - before <= _SHARED_PROBES
    last = GitProbe.shared(repo, exclude=tmp_path / f"home{3 * _SHARED_PROBES - 1}")
    assert GitProbe.shared(repo, exclude=tmp_path / f"home{3 * _SHARED_PROBES - 1}") is last


def test_a_worktree_records_its_own_edit_not_deleted_files(make_repo, tmp_path: Path, watch_mode: str) -> None:
    repo = make_repo({"train.py": "print('v1')\n", "src/a.py": "A = 1\n"})
    tree = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(tree))
    (tree / "src" / "a.py").write_text("A = 2\n")
    state = GitProbe(tree).state()
    assert state.dirty and b"A = 2" in state.diff and b"deleted file" not in state.diff


def test_new_files_in_empty_or_ignored_only_folders_are_seen(make_repo, watch_mode: str) -> None:
    repo = make_repo({"train.py": "print('v1')\n", ".gitignore": "*.csv\n"})
    (repo / "notes").mkdir()
    (repo / "data").mkdir()
    (repo / "data" / "raw.csv").write_text("a\n1\n")
    probe = GitProbe(repo)
    assert not probe.state().dirty
    (repo / "notes" / "idea.py").write_text("x = 1\n")
    (repo / "data" / "prep.py").write_text("y = 2\n")
    diff = probe.state().diff
    assert b"idea.py" in diff and b"prep.py" in diff


def test_odd_names_are_files_not_patterns(make_repo, watch_mode: str) -> None:
    import os

    repo = make_repo({"train.py": "print('v1')\n"})
    odd = repo / os.fsdecode(b"a\xff")
    odd.mkdir()
    (odd / "x.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "odd")
    probe = GitProbe(repo)
    assert not probe.state().dirty
    (repo / ":!x").write_text("literal\n")
    (repo / "train.py").write_text("print('v2')\n")
    state = probe.state()
    assert b"print('v2')" in state.diff and b":!x" in state.diff
