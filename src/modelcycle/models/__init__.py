"""Models packaged so they load anywhere without running untrusted code: flavours, signatures, manifests."""

from modelcycle.models.package import LoadedModel, Manifest, load_package, save_model, verify_package
from modelcycle.models.python_model import ModelContext, PythonModel
from modelcycle.models.signature import ColumnSpec, Signature, infer_signature

__all__ = [
    "ColumnSpec",
    "LoadedModel",
    "Manifest",
    "ModelContext",
    "PythonModel",
    "Signature",
    "infer_signature",
    "load_package",
    "save_model",
    "verify_package",
]
