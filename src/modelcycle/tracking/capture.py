"""What a run needs to be reproduced, captured without extra code from the user.

What cannot change within a process (interpreter, platform, installed packages, command
line) is captured once per process. The git state can change between two runs of one
notebook, so it is read per run, but cheaply: after one real ``git`` call the files it
depends on are stat-ed, and git runs again only when one of them changed.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle._hashing import hash_json

__all__ = ["GitProbe", "GitState", "ProcessInfo", "installed_packages", "process_info"]

MAX_UNTRACKED_FILE = 1 << 20  # untracked files larger than this are left out of the diff
MAX_UNTRACKED_TOTAL = 10 << 20
SKIP_DIRS = {".venv", "venv", "env", "__pycache__", "node_modules", ".ipynb_checkpoints", ".mypy_cache",
             ".pytest_cache", ".ruff_cache", ".tox", ".git", ".modelcycle"}
_GIT_TIMEOUT = 20


@dataclass(frozen=True)
class ProcessInfo:
    """Facts that hold for the whole process: command line, interpreter, platform, packages.

    Example:
        >>> process_info().python.count(".") == 2
        True
    """

    command: tuple[str, ...]
    cwd: str
    python: str
    platform: str
    environment: dict[str, Any]
    environment_id: str


_PROCESS: ProcessInfo | None = None


def installed_packages() -> dict[str, str]:
    """Installed distributions as {normalised name: version}."""
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata.get("Name") if dist.metadata else None
        if name:
            found.setdefault(name.lower().replace("_", "-"), dist.version)
    return dict(sorted(found.items()))


def _command() -> tuple[str, ...]:
    argv = list(getattr(sys, "orig_argv", sys.argv))
    joined = " ".join(argv)
    interactive = len(argv) <= 1 or "ipykernel" in joined or argv[1:2] == ["-c"] or (
        len(argv) > 1 and argv[1] == "-i"
    )
    return () if interactive else tuple(argv)


def process_info() -> ProcessInfo:
    """The process-wide part of a run's context, computed once."""
    global _PROCESS
    if _PROCESS is None or _PROCESS.cwd != os.getcwd():
        env = {
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "packages": installed_packages(),
        }
        _PROCESS = ProcessInfo(
            command=_command(),
            cwd=os.getcwd(),
            python=env["python"],
            platform=env["platform"],
            environment=env,
            environment_id=hash_json(env),
        )
    return _PROCESS


def reset_process_info() -> None:
    """Forget the process capture (after ``pip install`` in a notebook, for example)."""
    global _PROCESS
    _PROCESS = None


@dataclass(frozen=True)
class GitState:
    """The code version of a working tree; ``GitProbe(cwd).state()`` reads it.

    Example:
        >>> GitState(root="/repo", commit="abc", branch="main", dirty=False, diff=b"").dirty
        False
    """

    root: str
    commit: str | None
    branch: str | None
    dirty: bool
    diff: bytes  # a patch against ``commit``, untracked files included; empty when clean
    skipped: tuple[str, ...] = ()  # untracked files left out of the diff (too large)


def _git_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


class GitProbe:
    """Reads the git state of the working tree around ``cwd``; cached while nothing changes.

    Example:
        >>> GitProbe("/").state() is None   # not inside a repository
        True
    """

    def __init__(self, cwd: str | os.PathLike[str], exclude: str | os.PathLike[str] | None = None):
        self.cwd = Path(cwd).resolve()
        self.root = _git_root(self.cwd)
        self.exclude = Path(exclude).resolve() if exclude else None
        self._git = shutil.which("git")
        self._cached: GitState | None = None
        self._snapshot: list[tuple[str, int, int]] | None = None

    def state(self) -> GitState | None:
        if self.root is None or self._git is None:
            return None
        if self._snapshot is not None and self._unchanged():
            return self._cached
        try:
            self._cached, files = self._read()
        except (OSError, subprocess.SubprocessError):
            self._cached, files = None, []
        self._snapshot = self._stat_all(files)
        return self._cached

    # --- change detection -------------------------------------------------------------
    def _watch_list(self, files: list[str]) -> list[str]:
        root = self.root
        assert root is not None
        paths = {str(root), str(root / ".git" / "HEAD"), str(root / ".git" / "index")}
        head = root / ".git" / "HEAD"
        try:
            ref = head.read_text().strip()
            if ref.startswith("ref: "):
                paths.add(str(root / ".git" / ref[5:]))
        except OSError:
            pass
        for rel in files:
            p = root / rel
            paths.add(str(p))
            paths.add(str(p.parent))  # a new untracked file changes its folder's mtime
        return sorted(paths)

    @staticmethod
    def _stat(path: str) -> tuple[str, int, int]:
        try:
            st = os.stat(path)
            return path, st.st_mtime_ns, st.st_size
        except OSError:
            return path, -1, -1

    def _stat_all(self, files: list[str]) -> list[tuple[str, int, int]]:
        return [self._stat(p) for p in self._watch_list(files)]

    def _unchanged(self) -> bool:
        assert self._snapshot is not None
        return all(self._stat(entry[0]) == entry for entry in self._snapshot)

    # --- reading ----------------------------------------------------------------------
    def _run(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> bytes:
        proc = subprocess.run(
            [self._git, "-C", str(self.root), *args],
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            env=env,
            check=False,
        )
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, args, proc.stdout, proc.stderr)
        return proc.stdout

    def _excludes(self) -> list[str]:
        specs = [f":(exclude,glob)**/{d}/**" for d in sorted(SKIP_DIRS - {".git"})]
        if self.exclude is not None and self.root is not None:
            try:
                rel = self.exclude.relative_to(self.root)
                specs.append(f":(exclude){rel.as_posix()}")
            except ValueError:
                pass
        return specs

    def _read(self) -> tuple[GitState, list[str]]:
        commit = self._run("rev-parse", "--verify", "--quiet", "HEAD", check=False).decode().strip() or None
        branch = self._run("rev-parse", "--abbrev-ref", "HEAD", check=False).decode().strip() or None
        if branch == "HEAD":
            branch = None  # detached
        specs = ["--", ".", *self._excludes()]
        tracked = [f for f in self._run("ls-files", "-z").decode(errors="replace").split("\0") if f]
        status = self._run("status", "--porcelain=v1", "-z", "--untracked-files=all", *specs).decode(errors="replace")
        entries = [e for e in status.split("\0") if e]
        untracked = [e[3:] for e in entries if e.startswith("?? ")]
        dirty = bool(entries)
        keep, skipped, total = [], [], 0
        for rel in untracked:
            if any(part in SKIP_DIRS for part in Path(rel).parts):
                continue
            try:
                size = (self.root / rel).stat().st_size  # type: ignore[operator]
            except OSError:
                continue
            if size > MAX_UNTRACKED_FILE or total + size > MAX_UNTRACKED_TOTAL:
                skipped.append(rel)
                continue
            keep.append(rel)
            total += size
        diff = b""
        if dirty:
            diff = self._diff(commit, keep)
            if skipped:
                note = "".join(f"# not captured (too large): {p}\n" for p in skipped)
                diff = note.encode() + diff
        state = GitState(str(self.root), commit, branch, dirty, diff, tuple(skipped))
        return state, tracked + untracked

    def _diff(self, commit: str | None, untracked: list[str]) -> bytes:
        base = commit or "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # the empty tree
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ)
            index = Path(self.root, ".git", "index")  # type: ignore[arg-type]
            tmp_index = Path(tmp) / "index"
            if index.exists():
                shutil.copyfile(index, tmp_index)
            env["GIT_INDEX_FILE"] = str(tmp_index)
            if untracked:
                # intent-to-add in a throwaway index, so the diff shows untracked files as new
                self._run("add", "--intent-to-add", "--", *untracked, env=env, check=False)
            return self._run("diff", "--binary", base, "--", ".", *self._excludes(), env=env, check=False)
