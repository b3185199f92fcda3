"""PyTorch modules as safetensors weights plus the class that holds them (no pickle, no torch.load)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from modelcycle.errors import ModelError, UnsafeModelError
from modelcycle.models.trust import Trust

__all__ = ["PyTorchFlavour"]

FILE = "weights.safetensors"


class _TorchModel:
    """An ``nn.Module`` with a DataFrame-in, array-out ``predict``, which runs it in eval mode and without gradients."""

    def __init__(self, module: Any):
        self.module = module

    def predict(self, frame: Any) -> Any:
        import numpy as np
        import torch

        training = self.module.training  # a module being saved is put back as it was (a loaded one is in eval mode already)
        if training:
            self.module.eval()
        try:
            with torch.no_grad():
                out = self.module(torch.as_tensor(np.asarray(frame, dtype=np.float32)))
        finally:
            if training:
                self.module.train()
        return out.numpy()


class PyTorchFlavour:
    name = "pytorch"
    requirements = ("torch", "safetensors", "numpy")

    def handles(self, model: Any) -> bool:
        try:
            import torch
        except ImportError:
            return False
        return isinstance(model, torch.nn.Module)

    def predictor(self, model: Any) -> Any:
        """What predicts on a frame as the loaded package will (a module itself takes tensors)."""
        return _TorchModel(model)

    def save(self, model: Any, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        from modelcycle._deps import require

        save_file = require("safetensors.torch", "saving a PyTorch model").save_file
        cls = type(model)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            raise ModelError(
                f"{cls.__qualname__} is defined in a script or a function; move it into an importable module so the "
                "model can be rebuilt from its weights"
            )
        init = options.get("init_kwargs") or {}
        try:
            json.dumps(init)
        except TypeError:
            raise ModelError("init_kwargs must be JSON-able (numbers, strings, lists, dicts)") from None
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / FILE))
        return {"file": FILE, "class": f"{cls.__module__}:{cls.__qualname__}", "init_kwargs": init}

    def load(self, folder: Path, meta: dict[str, Any], trust: Trust) -> Any:
        path = folder / FILE
        module_name, _, qualname = str(meta.get("class", "")).partition(":")
        if not module_name or not qualname or not all(p.isidentifier() for p in (*module_name.split("."), *qualname.split("."))):
            raise UnsafeModelError(f"the model's class {meta.get('class')!r} is not a 'module:Class' name; refusing to load it")
        dotted = f"{module_name}.{qualname}"
        # Importing a module runs its code: only PyTorch's own modules, a class the caller names, or trust=True.
        if module_name.split(".", 1)[0] != "torch" and dotted not in trust.types and not trust.pickle:
            raise UnsafeModelError(
                f"this model is rebuilt from the class {dotted}, and importing {module_name} runs its code; if you wrote it or trust it, "
                f"load with trusted_types=[{dotted!r}] (on the command line: --trusted-type {dotted}, or MODELCYCLE_TRUSTED_TYPES)"
            )
        from modelcycle._deps import require

        safe_open = require("safetensors", "loading a PyTorch model").safe_open
        try:  # the header alone, before torch is touched: anything but safetensors is refused here
            with safe_open(str(path), framework="numpy") as f:
                list(f.keys())
        except Exception as e:
            raise UnsafeModelError(f"{path.name} is not a safetensors file ({e}); refusing to load it") from None
        torch = require("torch", "loading a PyTorch model")
        load_file = require("safetensors.torch", "loading a PyTorch model").load_file
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError, ValueError):
            raise ModelError(f"the model's class {meta.get('class')!r} cannot be imported here; install the package that defines it") from None
        if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
            raise UnsafeModelError(f"{meta.get('class')!r} is not a torch.nn.Module; refusing to call it")
        init = meta.get("init_kwargs") or {}
        if not isinstance(init, dict) or not all(isinstance(k, str) for k in init):
            raise UnsafeModelError("the manifest's init_kwargs are not a mapping of names to values; refusing to load it")
        state = load_file(str(path))
        module = obj(**init)
        module.load_state_dict(state)
        return _TorchModel(module.eval())
