"""Turn a run's recorded context back into the steps that reproduce it, and run them."""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from modelcycle.entities import Run
from modelcycle.errors import NotFoundError, ReproduceError
from modelcycle.tracking.capture import installed_packages
from modelcycle.tracking.client import DIFF_ARTIFACT, Client

__all__ = ["MetricComparison", "ReproducePlan", "ReproduceResult", "Step", "execute", "plan"]


@dataclass(frozen=True)
class Step:
    """One step of a reproduction: a title, the command to type, or a note.

    Example:
        >>> Step("Run the command", "python train.py").command
        'python train.py'
    """

    title: str
    command: str | None = None
    note: str | None = None


@dataclass
class ReproducePlan:
    """What reproducing a run takes, step by step; ``plan(client, run_id)`` builds it.

    ``runnable`` is False, with ``problem`` saying why, when ``execute`` cannot run it here.
    """

    run: Run
    steps: list[Step]
    package_changes: list[tuple[str, str | None, str | None]]  # name, recorded, installed here
    has_diff: bool
    runnable: bool
    problem: str | None = None


@dataclass(frozen=True)
class MetricComparison:
    """A metric of the original run beside the reproduced one.

    Example:
        >>> MetricComparison("auc", 0.9, 0.9).matches
        True
    """

    key: str
    original: float | None
    reproduced: float | None

    @property
    def matches(self) -> bool:
        a, b = self.original, self.reproduced
        if a is None or b is None:
            return False
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@dataclass
class ReproduceResult:
    """What ``execute`` did: the new run, the command's exit code and the metric comparison."""

    original: Run
    reproduced: Run | None
    returncode: int
    metrics: list[MetricComparison] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.returncode == 0 and self.reproduced is not None and all(m.matches for m in self.metrics)


_PACKAGE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")  # a distribution's name (PEP 508)
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")


def _package_changes(recorded: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """Packages whose recorded version differs from the installed one. A recorded name or version that is not one
    (an option such as ``--index-url=…`` planted in the record) is never passed to pip."""
    here = installed_packages()
    changes = []
    for name in sorted(set(recorded) | set(here)):
        if name == "modelcycle" or not _PACKAGE.fullmatch(str(name)):
            continue
        if name in recorded and not _VERSION.fullmatch(str(recorded[name])):
            continue
        if recorded.get(name) != here.get(name) and name in recorded:
            changes.append((name, recorded.get(name), here.get(name)))
    return changes


def _command(run: Run, root: str | None = None) -> list[str]:
    argv = list(run.context.command)
    if not argv:
        return []
    argv[0] = "python"
    if root and run.context.git_root:
        old = run.context.git_root.rstrip("/") + "/"
        argv = [root + "/" + a[len(old):] if a.startswith(old) else a for a in argv]
    return argv


def _store_step(client: Client) -> Step:
    """Exports that point modelcycle at the store holding the run, wherever the next steps run (a new worktree has no
    ``.modelcycle/`` of its own). A password in the store's URI is not printed."""
    settings = client.settings
    if settings.store_uri.startswith(("http://", "https://")):  # a team server: its URL, and the user's own token
        return Step("Use the server that holds the run",
                    f"export MODELCYCLE_TRACKING_URI={shlex.quote(settings.store_uri)} MODELCYCLE_TRACKING_TOKEN=<your token>")
    home = Path(settings.home)
    exports = [f"MODELCYCLE_HOME={shlex.quote(str(home))}"]
    note = None
    if settings.store_uri != f"sqlite:///{home / 'modelcycle.db'}":
        uri, hidden = _PASSWORD.subn(r"\1<password>@", settings.store_uri)
        exports.append(f"MODELCYCLE_STORE_URI={shlex.quote(uri)}")
        note = "put the store's password in place of <password>" if hidden else None
    if settings.artifact_uri != str(home / "artifacts"):
        exports.append(f"MODELCYCLE_ARTIFACT_URI={shlex.quote(settings.artifact_uri)}")
    return Step("Use the store that holds the run", "export " + " ".join(exports), note)


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def plan(client: Client, run_id: str) -> ReproducePlan:
    """The steps that reproduce ``run_id``, to paste into a shell in order: use the run's store, check out a new
    worktree (and go there), apply the diff, install, run (linked to the original by ``MODELCYCLE_REPRODUCES``).

    Raises:
        NotFoundError: no such run.
    """
    run = client.get_run(run_id)
    ctx = run.context
    steps: list[Step] = [_store_step(client)]
    problem = None
    has_diff = any(a.path == DIFF_ARTIFACT for a in run.artifacts)
    worktree = None
    if ctx.git_commit and ctx.git_root:
        worktree = str(Path(ctx.git_root).parent / f"reproduce-{run.id[:8]}")
        branch = f" (branch {ctx.git_branch})" if ctx.git_branch else ""
        steps.append(Step(f"Check out commit {ctx.git_commit[:12]}{branch} in a new worktree, and go there",
                          f"git -C {shlex.quote(ctx.git_root)} worktree add --detach {shlex.quote(worktree)} {shlex.quote(ctx.git_commit)} "
                          f"&& cd {shlex.quote(worktree)}"))
        if has_diff:
            patch = shlex.quote(worktree + ".diff")
            steps.append(Step("Apply the uncommitted changes the run had",
                              f"modelcycle runs download {shlex.quote(run.id[:12])} {DIFF_ARTIFACT} -o {patch} && git apply {patch} && rm {patch}"))
        elif ctx.git_dirty:
            steps.append(Step("Uncommitted changes", note="the working tree was dirty but no diff was stored"))
    elif ctx.git_root and not ctx.git_commit:
        problem = "the repository had no commit when the run started"
        steps.append(Step("Code version", note=problem))
    else:
        problem = "the run was not started inside a git repository, so its code version is unknown"
        steps.append(Step("Code version", note=problem + "; keep training code in git to make runs reproducible"))
    changes: list[tuple[str, str | None, str | None]] = []
    if ctx.environment_id:
        try:
            env = client.get_environment(run)
        except NotFoundError:
            env = {}
        changes = _package_changes(env.get("packages", {}))
        py = env.get("python")
        if py and py != sys.version.split()[0]:
            steps.append(Step(f"Use Python {py}", note=f"this interpreter is {sys.version.split()[0]}"))
        if changes:
            pins = " ".join(f"{n}=={recorded}" for n, recorded, _ in changes if recorded)
            steps.append(Step(f"Install the {len(changes)} package version(s) that differ", f"python -m pip install {pins}"))
        else:
            steps.append(Step("Packages", note="the installed package versions match the run's"))
    if ctx.seed is not None:
        steps.append(Step("Seed", note=f"the run called seed_everything({ctx.seed}); the script does it again"))
    argv = _command(run, worktree)
    if argv:
        where = f"cd {shlex.quote(ctx.cwd)} && " if ctx.cwd and ctx.cwd != "." else ""
        steps.append(Step("Run the command", f"{where}MODELCYCLE_REPRODUCES={shlex.quote(run.id)} {shlex.join(argv)}",
                          "the new run is linked to this one (`modelcycle runs show` says which it reproduces)"))
    else:
        problem = problem or "the run was started from an interactive session (notebook or REPL), not a command"
        steps.append(Step("Run", note="started from an interactive session: re-run the notebook or cells at this commit"))
    runnable = problem is None
    return ReproducePlan(run, steps, changes, has_diff, runnable, problem)


def execute(client: Client, p: ReproducePlan, install: bool = False, timeout: float | None = None) -> ReproduceResult:
    """Run a plan in a fresh git worktree; the new run is linked to the original and compared.

    Packages are installed into the current environment only when ``install`` is true.

    Raises:
        ReproduceError: the plan cannot run here (no git, no commit, interactive session).
    """
    run, ctx = p.run, p.run.context
    if not p.runnable:
        raise ReproduceError(f"cannot reproduce run {run.id[:12]}: {p.problem}")
    git = shutil.which("git")
    if git is None:
        raise ReproduceError("cannot reproduce: git is not installed")
    if not ctx.git_root or not Path(ctx.git_root, ".git").exists():
        raise ReproduceError(f"cannot reproduce: the repository {ctx.git_root} is not on this machine; clone it there")
    tmp = Path(tempfile.mkdtemp(prefix=f"modelcycle-reproduce-{run.id[:8]}-"))
    src = tmp / "src"
    try:
        proc = subprocess.run([git, "-C", ctx.git_root, "worktree", "add", "--detach", str(src), ctx.git_commit or ""],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ReproduceError(f"cannot check out commit {ctx.git_commit}: {proc.stderr.strip().splitlines()[-1:]}")
        if p.has_diff:
            patch = tmp / "code.diff"
            patch.write_bytes(client.read_artifact(run.id, DIFF_ARTIFACT))
            proc = subprocess.run([git, "-C", str(src), "apply", "--whitespace=nowarn", str(patch)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise ReproduceError(f"the stored diff does not apply to commit {ctx.git_commit}: {proc.stderr.strip()}")
        if install and p.package_changes:
            pins = [f"{n}=={r}" for n, r, _ in p.package_changes if r]
            subprocess.run([sys.executable, "-m", "pip", "install", *pins], check=True)
        argv = _command(run, str(src))
        argv[0] = sys.executable
        cwd = src / (ctx.cwd or ".") if ctx.cwd and not os.path.isabs(ctx.cwd) else src
        env = dict(os.environ)
        env.update({
            "MODELCYCLE_REPRODUCES": run.id,
            "MODELCYCLE_HOME": str(client.settings.home),
            "MODELCYCLE_STORE_URI": client.settings.store_uri,
            "MODELCYCLE_ARTIFACT_URI": client.settings.artifact_uri,
        })
        if ctx.seed is not None:
            env["PYTHONHASHSEED"] = str(ctx.seed)
        code = subprocess.run(argv, cwd=cwd, env=env, timeout=timeout).returncode
        found = client.search_runs(filter=f"reproduces = '{run.id}'", order_by=["start_time DESC"], limit=1, as_frame=False)
        new = found[0] if found else None  # type: ignore[index]
        rows = []
        if new is not None:
            for key in sorted(set(run.metrics) | set(new.metrics)):
                rows.append(MetricComparison(key, run.metrics.get(key), new.metrics.get(key)))
        return ReproduceResult(run, new, code, rows)
    finally:
        subprocess.run([git, "-C", ctx.git_root, "worktree", "remove", "--force", str(src)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
