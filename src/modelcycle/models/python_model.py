"""The generic flavour's base class, for models no safe format covers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ModelContext", "PythonModel"]


@dataclass(frozen=True)
class ModelContext:
    """What ``load_context`` receives: the package folder and the local paths of its artifacts."""

    path: Path
    artifacts: dict[str, Path] = field(default_factory=dict)


class PythonModel:
    """Subclass this for a model no safe format covers. It is pickled, so it is saved only with
    ``allow_pickle=True`` and loaded only with ``trust=True``.

    Example:
        >>> class Doubler(PythonModel):
        ...     def predict(self, model_input):
        ...         return model_input["x"] * 2
        >>> import pandas as pd
        >>> Doubler().predict(pd.DataFrame({"x": [1, 2]})).tolist()
        [2, 4]
    """

    def load_context(self, context: ModelContext) -> None:
        """Called once after loading: read files given as ``artifacts=`` when the model was logged."""

    def predict(self, model_input: Any) -> Any:
        raise NotImplementedError("a PythonModel subclass must define predict(self, model_input)")
