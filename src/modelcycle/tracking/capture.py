"""What a run needs to be reproduced, captured without extra code from the user.

What cannot change within a process (interpreter, platform, installed packages, command
line) is captured once per process. The git state can change between two runs of one
notebook, so it is checked per run, at a cost that does not grow with the repository: on Linux
the kernel reports (inotify) every change in the folders that hold the working tree's files and
in git's HEAD, index and current branch, and git runs again only when something changed. Where
inotify is not available (other systems, or its limits reached), the files are stat-ed instead.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from modelcycle._hashing import hash_json

__all__ = ["GitProbe", "GitState", "ProcessInfo", "installed_packages", "process_info"]

MAX_UNTRACKED_FILE = 1 << 20  # untracked files larger than this are left out of the diff
MAX_UNTRACKED_TOTAL = 10 << 20
SKIP_DIRS = {".venv", "venv", "env", "__pycache__", "node_modules", ".ipynb_checkpoints", ".mypy_cache",
             ".pytest_cache", ".ruff_cache", ".tox", ".git", ".modelcycle"}
_GIT_TIMEOUT = 20
_SHARED_PROBES = 4  # probes kept per process (each holds one inotify instance; a user has 128 by default)


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


class _Watcher:
    """Kernel notifications (inotify) for the folders a working tree lives in, read without waiting.

    A change counts when it can change what git reports: a known file written, any entry created,
    deleted or renamed in a watched folder, git's HEAD, index, packed refs or current branch moved.
    Writes to files git ignores (outputs, caches) in the same folders do not count.
    """

    def __init__(self, inotify: Any, flags: Any):
        self._inotify = inotify
        self._flags = flags
        self.pid = os.getpid()
        self._names: dict[int, set[str] | None] = {}  # watch → the names that count there (None: entries of any name)
        self._git_names: dict[int, set[str]] = {}  # watch of a git folder → the names that count there

    @classmethod
    def create(cls) -> _Watcher | None:
        if sys.platform != "linux":
            return None
        try:
            import inotify_simple
        except ImportError:
            return None
        try:
            return cls(inotify_simple.INotify(), inotify_simple.flags)
        except OSError:  # no instance left (fs.inotify.max_user_instances)
            return None

    def close(self) -> None:
        try:
            self._inotify.close()
        except OSError:
            pass

    def watch(self, folders: dict[str, set[str]], git_folders: dict[str, set[str]]) -> bool:
        """Watch ``folders`` (path → names of the files git reports there) and the git folders; False when
        the kernel's watch limit is reached."""
        f = self._flags
        mask = (f.MODIFY | f.ATTRIB | f.CLOSE_WRITE | f.MOVED_FROM | f.MOVED_TO | f.CREATE | f.DELETE
                | f.DELETE_SELF | f.MOVE_SELF)
        for watched, store in ((folders, False), (git_folders, True)):
            for folder, names in watched.items():
                try:
                    wd = self._inotify.add_watch(folder, mask)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # gone meanwhile: its parent's watch saw it go
                except OSError:
                    return False  # the kernel's watch limit: stat instead
                if store:
                    self._git_names.setdefault(wd, set()).update(names or ())
                else:
                    self._names[wd] = names
        return True

    def changed(self) -> bool:
        """Whether anything that counts happened since the last call (events are consumed)."""
        f = self._flags
        entry = f.CREATE | f.DELETE | f.MOVED_FROM | f.MOVED_TO
        found = False
        for event in self._inotify.read(timeout=0):
            if event.mask & (f.Q_OVERFLOW | f.IGNORED | f.DELETE_SELF | f.MOVE_SELF):
                found = True
            elif event.wd in self._git_names:
                found = found or event.name in self._git_names[event.wd]
            elif event.mask & entry:
                found = True
            else:
                names = self._names.get(event.wd)
                found = found or names is None or event.name in names
        return found


class GitProbe:
    """Reads the git state of the working tree around ``cwd``; cached while nothing changes.

    Example:
        >>> GitProbe("/").state() is None   # not inside a repository
        True
    """

    _shared: ClassVar[OrderedDict[tuple[str, str | None], GitProbe]] = OrderedDict()
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, cwd: str | os.PathLike[str], exclude: str | os.PathLike[str] | None = None):
        self.cwd = Path(cwd).resolve()
        self.root = _git_root(self.cwd)
        self.exclude = Path(exclude).resolve() if exclude else None
        self._git = shutil.which("git")
        self._cached: GitState | None = None
        self._snapshot: list[tuple[str, int, int]] | None = None
        self._watcher: _Watcher | None = None
        self._git_dirs: tuple[Path, Path] | None = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, cwd: str | os.PathLike[str], exclude: str | os.PathLike[str] | None = None) -> GitProbe:
        """One probe per working tree and excluded folder in this process: the last few used are kept, the
        others closed, so ask for it each time rather than keeping it."""
        key = (os.fspath(cwd), os.fspath(exclude) if exclude else None)
        with cls._shared_lock:
            probe = cls._shared.pop(key, None) or cls(cwd, exclude)
            cls._shared[key] = probe
            while len(cls._shared) > _SHARED_PROBES:
                cls._shared.popitem(last=False)[1].close()
        return probe

    def close(self) -> None:
        """Stop watching (the next ``state()`` reads git again)."""
        with self._lock:
            if self._watcher is not None:
                self._watcher.close()
            self._watcher, self._snapshot = None, None

    def state(self) -> GitState | None:
        if self.root is None or self._git is None:
            return None
        with self._lock:
            watcher = self._watcher
            if watcher is not None and watcher.pid != os.getpid():  # a forked child: the watch is the parent's
                self._watcher = watcher = None
                self._snapshot = None
            if watcher is not None:
                if not watcher.changed():
                    return self._cached
            elif self._snapshot is not None and self._unchanged():
                return self._cached
            if watcher is None:
                watcher = _Watcher.create()
            # Every folder of the tree is watched before git reads it, any event counting: a change made while
            # git reads is seen by the next check (one extra read), never lost.
            folders = self._walk()
            git_folders = self._git_folders()
            if watcher is not None and not watcher.watch(dict.fromkeys(folders), git_folders):
                watcher.close()
                watcher = None
            try:
                self._cached, files = self._read()
            except (OSError, subprocess.SubprocessError):
                self._cached, files = None, []
            if watcher is not None and watcher.watch(self._names_by_folder(folders, files), {}):
                self._watcher, self._snapshot = watcher, None
            else:
                if watcher is not None:
                    watcher.close()
                self._watcher = None
                self._snapshot = self._stat_all(folders, git_folders, files)
            return self._cached

    # --- change detection -------------------------------------------------------------
    def _git_paths(self) -> tuple[Path, Path]:
        """git's own folder for this working tree (HEAD, index) and the common one (refs); asked once per probe."""
        if self._git_dirs is not None:
            return self._git_dirs
        root = self.root
        assert root is not None
        try:
            out = self._run("rev-parse", "--git-dir", "--git-common-dir").decode().split("\n")
            self._git_dirs = (root / out[0].strip()).resolve(), (root / out[1].strip()).resolve()
            return self._git_dirs
        except (OSError, subprocess.SubprocessError, IndexError):
            return root / ".git", root / ".git"

    def _walk(self) -> list[str]:
        """Every folder of the working tree but git's own, the store's and tool folders (SKIP_DIRS): a new file
        in an empty folder, or in one of ignored files only, is a change too."""
        root = self.root
        assert root is not None
        skip = {str(self.exclude)} if self.exclude is not None else set()
        found = []
        for folder, subdirs, _ in os.walk(root):
            found.append(folder)
            subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS and os.path.join(folder, d) not in skip]
        return found

    def _git_folders(self) -> dict[str, set[str]]:
        """git's folders and the names in them that count: HEAD, index, packed refs, the current branch."""
        git_dir, common = self._git_paths()
        git = {str(git_dir): {"HEAD", "index"}}
        git.setdefault(str(common), set()).add("packed-refs")
        try:
            ref = (git_dir / "HEAD").read_text().strip()
            if ref.startswith("ref: "):
                branch = common / ref[5:]
                git.setdefault(str(branch.parent), set()).add(branch.name)
        except OSError:
            pass
        return {k: v for k, v in git.items() if Path(k).is_dir()}

    def _names_by_folder(self, folders: list[str], files: list[str]) -> dict[str, set[str] | None]:
        """Per folder, the names git reports there (files and sub-folders on their way): a write to another
        name in it (an ignored output) is not a change; a name created, deleted or renamed always is."""
        root = self.root
        assert root is not None
        names: dict[str, set[str] | None] = {folder: set() for folder in folders}
        for rel in files:
            parts = Path(rel).parts
            for depth in range(len(parts)):
                folder = str(root.joinpath(*parts[:depth]))
                entry = names.setdefault(folder, set())
                if entry is not None:
                    entry.add(parts[depth])
        return names

    def _watch_list(self, folders: list[str], git_folders: dict[str, set[str]], files: list[str]) -> list[str]:
        root = self.root
        assert root is not None
        paths = {*folders, *(os.path.join(folder, name) for folder, names in git_folders.items() for name in names)}
        paths.update(str(root / rel) for rel in files)
        return sorted(paths)

    @staticmethod
    def _stat(path: str) -> tuple[str, int, int]:
        try:
            st = os.stat(path)
            return path, st.st_mtime_ns, st.st_size
        except OSError:
            return path, -1, -1

    def _stat_all(self, folders: list[str], git_folders: dict[str, set[str]], files: list[str]) -> list[tuple[str, int, int]]:
        return [self._stat(p) for p in self._watch_list(folders, git_folders, files)]

    def _unchanged(self) -> bool:
        assert self._snapshot is not None
        return all(self._stat(entry[0]) == entry for entry in self._snapshot)

    # --- reading ----------------------------------------------------------------------
    def _run(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> bytes:
        proc = subprocess.run(  # no optional locks: reading never rewrites the index, so it is not a change
            [self._git, "--no-optional-locks", "-C", str(self.root), *args],
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
        tracked = [f for f in os.fsdecode(self._run("ls-files", "-z")).split("\0") if f]
        status = os.fsdecode(self._run("status", "--porcelain=v1", "-z", "--untracked-files=all", *specs))
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
            index = self._git_paths()[0] / "index"  # a worktree's or submodule's own, where .git is a file
            tmp_index = Path(tmp) / "index"
            if index.exists():
                shutil.copy2(index, tmp_index)  # with its times: git's racy-clean check needs them
            elif commit is not None:
                raise OSError(f"git's index of {self.root} is not at {index}")
            env["GIT_INDEX_FILE"] = str(tmp_index)
            if untracked:
                # intent-to-add in a throwaway index, so the diff shows untracked files as new; names are
                # literal (a file called ':!x' is a file, not a pathspec)
                self._run("add", "--intent-to-add", "--", *untracked, env={**env, "GIT_LITERAL_PATHSPECS": "1"},
                          check=False)
            return self._run("diff", "--binary", base, "--", ".", *self._excludes(), env=env, check=False)
