"""Hostile model packages built in code: skops files whose schema calls code, manifests that lie, bombs.

Every payload, if it ever ran, would create a canary file; the tests assert the canary never appears.
A control test loads the same payload with skops alone and the type trusted, to show each one is live.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelcycle._hashing import sha256_file
from modelcycle.models import save_model
from modelcycle.models.package import MANIFEST

CANARY_MODULE = "mc_canary_module"


def json_node(value: Any) -> dict[str, Any]:
    return {"__class__": type(value).__name__, "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(value),
            "is_json": True}


def tuple_node(values: list[Any]) -> dict[str, Any]:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": [json_node(v) for v in values]}


def call_node(module: str, name: str, args: list[Any]) -> dict[str, Any]:
    """A node that, when built, calls ``module.name(*args)``."""
    return {"__class__": name, "__module__": module, "__loader__": "ConstructorFromReduceNode", "content": tuple_node(args)}


def function_node(module: str, name: str) -> dict[str, Any]:
    """A node that, when built, imports ``module`` and returns ``module.name``."""
    return {"__class__": name, "__module__": module, "__loader__": "FunctionNode"}


def object_node(module: str, name: str) -> dict[str, Any]:
    """A node that, when built, imports ``module`` and makes an instance of ``module.name``."""
    return {"__class__": name, "__module__": module, "__loader__": "ObjectNode"}


def keyed_dict(key: str, key_type: dict[str, Any]) -> dict[str, Any]:
    """A dict whose one key is turned back into its type by calling ``key_type`` with the key's text (skops does that on load)."""
    return {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {key: json_node(1)},
            "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": [key_type]}}


def named(node: dict[str, Any]) -> str:
    """The type name a refusal of ``node`` names (for a keyed dict: its key type)."""
    if node["__loader__"] == "DictNode":
        node = node["key_types"]["content"][0]
    return f"{node['__module__']}.{node['__class__']}"


def canary_module(folder: Path, canary: Path) -> Path:
    """A module on sys.path whose import creates the canary (importing it is running code)."""
    (folder / f"{CANARY_MODULE}.py").write_text(
        f"open({str(canary)!r}, 'w').close()\n\ndef f(x):\n    return x\n\nclass Thing:\n    pass\n\nclass Net:\n    pass\n")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    sys.modules.pop(CANARY_MODULE, None)
    return folder / f"{CANARY_MODULE}.py"


def payloads(canary: Path, script: Path) -> dict[str, dict[str, Any]]:
    """Nodes that run code when skops builds them, each through a different standard-library or library callable."""
    code = f"open({str(canary)!r}, 'w').close()"
    return {
        "cProfile.run": call_node("cProfile", "run", [code]),
        "profile.run": call_node("profile", "run", [code]),
        "timeit.timeit": call_node("timeit", "timeit", [code + "; 1/0"]),
        "builtins.exec": call_node("builtins", "exec", [code]),
        "os.system": call_node("os", "system", [f"touch {canary}"]),
        "subprocess.getoutput": call_node("subprocess", "getoutput", [f"touch {canary}"]),
        "runpy.run_path": call_node("runpy", "run_path", [str(script)]),
        "importlib.import_module": call_node("importlib", "import_module", [CANARY_MODULE]),
        "import by function reference": function_node(CANARY_MODULE, "f"),
        "import by object": object_node(CANARY_MODULE, "Thing"),
        "numpy.memmap writes a file": call_node("numpy", "memmap", [str(canary), "uint8", "w+", 0, [4]]),
        "scipy FortranFile writes a file": call_node("scipy.io._fortran", "FortranFile", [str(canary), "w"]),
        "a library function called, not referenced": call_node("sklearn.utils.validation", "check_array", [[[1.0]]]),
        "a dict key type that makes folders": keyed_dict(str(canary), function_node("sklearn.utils.validation", "check_memory")),
        "a dict key type that imports": keyed_dict(CANARY_MODULE, function_node("sklearn.utils._set_output", "check_library_installed")),
        "a dict key type that is a pure function": keyed_dict("1", function_node("numpy", "mean")),
    }


def logistic(tmp_path: Path, name: str = "pkg") -> tuple[Path, pd.DataFrame]:
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40)})
    model = LogisticRegression().fit(X, (X["a"] > 0.5).astype(int))
    save_model(model, tmp_path / name, input_example=X.head(), reference_data=X)
    return tmp_path / name, X


def rehash(folder: Path, **manifest_changes: Any) -> None:
    """Rewrite the manifest so every listed hash matches the files now in the folder (what anyone who can write it can do)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for key, value in manifest_changes.items():
        manifest[key] = value
    for name in manifest["files"]:
        manifest["files"][name] = {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def plant(skops_file: Path, node: dict[str, Any], attribute: str = "C") -> None:
    """Put ``node`` in place of one attribute of the saved estimator (deep inside an otherwise genuine file)."""
    with zipfile.ZipFile(skops_file) as z:
        members = {n: z.read(n) for n in z.namelist()}
    schema = json.loads(members["schema.json"])
    schema["content"]["content"][attribute] = node
    members["schema.json"] = json.dumps(schema).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    skops_file.write_bytes(buffer.getvalue())


def hostile_package(tmp_path: Path, node: dict[str, Any], name: str = "pkg", list_it: bool = True) -> Path:
    """A genuine package whose model.skops now holds ``node``, its manifest rehashed and listing the type as trusted."""
    folder, _ = logistic(tmp_path, name)
    plant(folder / "model.skops", node)
    manifest = json.loads((folder / MANIFEST).read_text())
    meta = manifest["flavour_meta"]
    if list_it:
        meta["trusted_types"] = [*meta.get("trusted_types", []), named(node)]
    rehash(folder, flavour_meta=meta)
    return folder


def deflate_bomb(size: int) -> bytes:
    """A zip whose one member inflates to ``size`` zero bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("schema.json", b"\0" * size)
    return buffer.getvalue()
