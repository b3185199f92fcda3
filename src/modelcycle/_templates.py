"""The files modelcycle writes for people (a new project, the demo's project), kept as package data.

They live in ``modelcycle/templates/<kind>/`` as the files they become, so they can be read, linted and
tested as such. Names starting with ``dot-`` become names starting with ``.`` (``dot-gitignore`` →
``.gitignore``) and a ``.tmpl`` suffix is dropped, so that no tool takes a template for the
repository's own configuration. Tokens such as ``__PROJECT__`` are replaced when a file is rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable

__all__ = ["render"]


def _target(parts: list[str]) -> str:
    out = ["." + p[4:] if p.startswith("dot-") else p for p in parts]
    if out[-1].endswith(".tmpl"):
        out[-1] = out[-1][: -len(".tmpl")]
    return "/".join(out)


def _walk(folder: Traversable, prefix: list[str]) -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        if entry.name == "__pycache__":
            continue
        parts = [*prefix, entry.name]
        if entry.is_dir():
            found.update(_walk(entry, parts))
        else:
            found[_target(parts)] = entry
    return found


def render(kind: str, values: Mapping[str, str]) -> dict[str, str]:
    """Every file of the ``kind`` templates as {relative path: text}, each token of ``values`` replaced.

    Example:
        >>> sorted(render("demo", {"__WINDOW__": "8"}))
        ['modelcycle.yaml', 'pipeline.py', 'policy.yaml']
    """
    out = {}
    for rel, entry in sorted(_walk(files("modelcycle") / "templates" / kind, []).items()):
        text = entry.read_text(encoding="utf-8")
        for token, value in values.items():
            text = text.replace(token, value)
        out[rel] = text
    return out
