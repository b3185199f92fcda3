"""The generic flavour's base class, for models no safe format covers."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.errors import ModelError

__all__ = ["BoundModel", "ModelContext", "PythonModel", "takes_context"]

_FORMS = "predict(self, model_input) or, as in MLflow, predict(self, context, model_input, params=None)"


@dataclass(frozen=True)
class ModelContext:
    """What ``load_context`` (and a ``predict`` that takes a context) receives: the package folder and the local paths of its artifacts."""

    path: Path
    artifacts: dict[str, Path] = field(default_factory=dict)


class PythonModel:
    """Subclass this for a model no safe format covers. It is pickled, so it is saved only with
    ``allow_pickle=True`` and loaded only with ``trust=True``.

    ``predict`` is either ``predict(self, model_input)`` or MLflow's ``predict(self, context, model_input,
    params=None)``, so a class written for MLflow works as it is; any other form is refused when the model
    is saved.

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


def takes_context(model: Any) -> bool:
    """Whether ``model.predict`` is MLflow's ``predict(self, context, model_input, params=None)`` rather than ``predict(self, model_input)``.

    Example:
        >>> class MLflowStyle(PythonModel):
        ...     def predict(self, context, model_input, params=None):
        ...         return model_input
        >>> takes_context(MLflowStyle())
        True

    Raises:
        ModelError: ``predict`` is not defined, or has another form (naming the parameters it has).
    """
    name = type(model).__name__
    if type(model).predict is PythonModel.predict:
        raise ModelError(f"{name} does not define predict; write {_FORMS}")
    try:
        parameters = list(inspect.signature(model.predict).parameters.values())
    except (TypeError, ValueError):
        raise ModelError(f"the signature of {name}.predict cannot be read; write {_FORMS}") from None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    keyword = [p for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    mlflow_form = bool(positional) and positional[0].name == "context"  # MLflow's form, whatever its defaults
    if len(required) not in (1, 2) or keyword or (mlflow_form and len(positional) < 2):
        shown = ", ".join(["self", *(str(p) for p in parameters)])
        raise ModelError(f"{name}.predict({shown}) takes neither form PythonModel accepts; write {_FORMS}")
    return mlflow_form or len(required) == 2


class BoundModel:
    """A PythonModel whose ``predict`` takes the model input alone, whichever form its class wrote; other attributes
    (``predict_proba``, ``classes_`` …) are the model's.

    Example:
        >>> class MLflowStyle(PythonModel):
        ...     def predict(self, context, model_input, params=None):
        ...         return [len(context.artifacts), model_input]
        >>> BoundModel(MLflowStyle(), ModelContext(Path("."))).predict("rows")
        [0, 'rows']
    """

    def __init__(self, model: Any, context: ModelContext):
        self.model = model
        self.predict: Callable[[Any], Any] = functools.partial(model.predict, context) if takes_context(model) else model.predict

    def __getattr__(self, name: str) -> Any:
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)
