"""Anything else, as a PythonModel subclass: pickled, so saved and loaded only with explicit consent."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from modelcycle.errors import ModelError, UnsafeModelError
from modelcycle.models.trust import Trust

__all__ = ["PythonFlavour"]

FILE = "python_model.pkl"


class PythonFlavour:
    name = "python"
    requirements = ("cloudpickle",)

    def handles(self, model: Any) -> bool:
        from modelcycle.models.python_model import PythonModel

        return isinstance(model, PythonModel)

    def predictor(self, model: Any) -> Any:
        """The model with a ``predict(model_input)``, whichever form its class wrote (before ``load_context``, so it may fail)."""
        from modelcycle.models.python_model import BoundModel, ModelContext

        return BoundModel(model, ModelContext(Path(".")))

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        from modelcycle.models.python_model import takes_context

        takes_context(model)  # a predict of another form is refused now, not at the first prediction
        if not options.get("allow_pickle"):
            raise UnsafeModelError(
                f"a {type(model).__name__} can only be saved with pickle, and a pickle runs code when it is loaded; "
                "pass allow_pickle=True to save it (it will then load only with trust=True)"
            )
        try:
            import cloudpickle as dumper  # classes defined in a notebook or script are saved by value
        except ImportError:
            dumper = pickle
        try:
            (folder / FILE).write_bytes(dumper.dumps(model))
        except Exception as e:
            raise ModelError(f"cannot pickle this {type(model).__name__}: {e}") from None
        return {"file": FILE, "pickle": True}

    def load(self, folder: Path, meta: dict[str, Any], trust: Trust) -> Any:
        if not trust.pickle:
            raise UnsafeModelError(
                "this model is a pickled PythonModel: loading it runs whatever code it contains; "
                "load it with trust=True (on the command line: --trust) only if you trust whoever saved it"
            )
        try:
            import cloudpickle  # noqa: F401  (registers what cloudpickled classes need)
        except ImportError:
            pass
        try:
            with open(folder / FILE, "rb") as f:
                model = pickle.load(f)  # trust=True: the caller accepted that this runs code
        except (ImportError, AttributeError) as e:
            where = f"module {e.name!r}" if getattr(e, "name", None) else str(e).splitlines()[0][:200]
            raise ModelError(f"the pickled model needs {where}, which cannot be imported here; run where the code that defines it can be "
                             "imported (from the folder that holds it, or with that folder on PYTHONPATH)") from None
        except Exception as e:
            raise ModelError(f"the pickled model could not be loaded ({type(e).__name__}: {str(e)[:200]})") from None
        return model
