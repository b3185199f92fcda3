"""Finding a pipeline by ``path/to/file.py:name`` or ``package.module:name``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInputError

__all__ = ["load_pipeline"]


def load_pipeline(target: str) -> Any:
    """``path/to/file.py:name`` or ``package.module:name`` → the Pipeline object."""
    from modelcycle.pipelines.core import Pipeline

    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise InvalidInputError(f"{target!r}: name the pipeline as path/to/file.py:pipeline_name (or module:pipeline_name)")
    if where.endswith(".py") or "/" in where or Path(where).is_file():
        path = Path(where).resolve()
        if not path.is_file():
            raise InvalidInputError(f"{where!r} is not a file")
        module_name = f"modelcycle_pipeline_{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise InvalidInputError(f"{where!r} cannot be imported as Python")
        module = importlib.util.module_from_spec(spec)
        module.__modelcycle_pipeline_file__ = True  # type: ignore[attr-defined]  (sent to Dask workers by value)
        sys.modules[module_name] = module
        sys.path.insert(0, str(path.parent))  # so the file's own imports of its neighbours work
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise InvalidInputError(f"cannot import {where!r}: {e}") from None
    found = getattr(module, name, None)
    if not isinstance(found, Pipeline):
        pipelines = sorted(k for k, v in vars(module).items() if isinstance(v, Pipeline))
        raise InvalidInputError(f"{where} has no pipeline named {name!r}; its pipelines: {', '.join(pipelines) or 'none'}")
    return found
