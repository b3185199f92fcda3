"""What a model file may build when it is loaded: decided by these rules and the caller, never by the file.

A skops file is a tree of nodes, each naming a type (``sklearn.tree._tree.Tree``) and how it is
built from the file (``ObjectNode``: an instance with its attributes; ``FunctionNode``: a reference
to a function; ``ConstructorFromReduceNode``: the type called with arguments; …). Before skops
builds anything, :func:`audit_skops` reads that tree and allows a node only when

- skops trusts its type by default (its own list of scikit-learn estimators, numpy and scipy types), or
- it is a library type by :func:`library_allows` — a class of scikit-learn (outside its testing,
  dataset and vendored modules), a scikit-learn-API model of XGBoost or LightGBM, a numpy array,
  scalar, dtype or random generator type, a scipy distribution, interpolant or sparse type; or a
  *reference* (never a call) to a function of scikit-learn, scipy.special or numpy's pure array
  functions — or
- the caller names the type (``trusted_types=[...]``, ``MODELCYCLE_TRUSTED_TYPES``).

Functions are only ever referenced, never called, by an allowed node; bound methods and
``operator`` getters are allowed only when named. A module is imported to check a name only when it
lies inside those libraries. Whatever a package's manifest lists is informative: a listed type
the loader does not allow is refused by name.

The same rules decide at save time, so a model that saves without ``trusted_types`` loads without them.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import types
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelcycle.errors import UnsafeModelError

__all__ = ["DENIED_ROOTS", "Trust", "audit_skops", "check_loaded", "library_allows"]

# Never, not even when a caller names them: calling or importing these runs code or touches the system.
DENIED_ROOTS = frozenset({
    "builtins", "__builtin__", "_operator", "operator", "os", "posix", "nt", "subprocess", "sys", "importlib", "pickle", "_pickle",
    "marshal", "shutil", "socket", "io", "_io", "codecs", "runpy", "ctypes", "types", "code", "codeop", "pty", "pdb", "bdb",
    "webbrowser", "multiprocessing", "threading", "_thread", "signal", "asyncio", "joblib", "cloudpickle", "dill", "pathlib",
    "tempfile", "urllib", "http", "requests", "inspect", "timeit", "cProfile", "profile", "trace", "doctest", "unittest",
    "pydoc", "site", "sysconfig", "distutils", "setuptools", "pkgutil", "zipimport", "glob", "fileinput", "gc", "atexit",
    "platform", "venv", "ensurepip", "idlelib", "tkinter", "turtle", "antigravity", "this", "smtplib", "ftplib", "telnetlib",
    "xmlrpc", "socketserver", "selectors", "select", "mmap", "resource", "logging", "tty", "termios", "fcntl",
    "shelve", "dbm", "sqlite3", "zipfile", "tarfile", "lzma", "bz2", "gzip", "zlib", "email", "mailbox", "imaplib", "poplib",
})
# Library modules that are never imported or built from, whatever they hold: tests, datasets that
# read and write files, vendored code, build helpers and the functions that change global settings.
_EXCLUDED_PARTS = frozenset({"tests", "test", "testing", "_testing", "conftest", "__main__", "externals", "datasets", "_build_utils",
                             "__check_build", "_show_versions", "_config", "_joblib", "parallel", "fixes", "f2py", "distutils",
                             "_distributor_init", "setup", "io", "lib", "_lib", "dask", "spark", "tracker", "collective",
                             "federated", "plotting", "callback", "_datasource", "npyio", "memmap", "ctypeslib", "_pytesttester"})
_NUMPY_FUNCTIONS = frozenset({
    "mean", "median", "average", "sum", "prod", "min", "max", "amin", "amax", "std", "var", "ptp", "percentile", "quantile",
    "nanmean", "nanmedian", "nansum", "nanprod", "nanmin", "nanmax", "nanstd", "nanvar", "nanpercentile", "nanquantile",
    "cumsum", "cumprod", "diff", "clip", "round", "around", "sort", "argsort", "argmax", "argmin", "nan_to_num", "digitize",
    "asarray", "array", "ravel", "squeeze", "transpose", "reshape", "concatenate", "hstack", "vstack", "column_stack", "where",
    "log1p", "expm1", "any", "all", "count_nonzero", "unique", "searchsorted", "interp", "histogram", "bincount", "dot", "matmul",
})
# scikit-learn functions a model may refer to: estimators call them when they predict (a FunctionTransformer's func, a
# score function, a scorer's metric, a callable metric or column selector), with arguments the file can bind (a
# functools.partial), so only modules of pure computations — never one that reads, writes, imports or configures.
_PURE_SKLEARN_MODULES = ("sklearn.metrics", "sklearn.feature_selection._univariate_selection", "sklearn.feature_selection._mutual_info",
                         "sklearn.cluster._kmeans", "sklearn.utils.extmath", "sklearn.preprocessing._data", "sklearn.neighbors._graph")
_IMPURE_SKLEARN_MODULES = ("sklearn.metrics._plot",)
_PURE_SKLEARN_FUNCTIONS = frozenset({"sklearn.utils.validation.check_array", "sklearn.utils.validation.column_or_1d"})
# Pure array functions scikit-learn keeps references to, from modules that are otherwise not imported.
_EXTRA_FUNCTIONS = {"scipy._lib.array_api_compat.numpy._aliases.asarray": ("scipy._lib.array_api_compat.numpy._aliases", "asarray")}
# Built-in data types a file may *refer to* (``dtype_include=object``), never build through a node of their own.
_BUILTIN_TYPES = frozenset(f"builtins.{t}" for t in ("object", "str", "int", "float", "bool", "complex", "bytes", "bytearray", "list",
                                                    "dict", "tuple", "set", "frozenset", "slice", "range", "NoneType"))
# What a dict's keys may be turned back into (skops calls the key type with the key's text).
_KEY_TYPES = frozenset({"builtins.str", "builtins.int", "builtins.float", "builtins.bool"})
# Calling one of these once per node builds the same object the saved tree described: skops always builds this type itself.
_EXACT_BUILDS = frozenset({"functools.partial"})
# How each kind of skops node uses its type: referenced (imported, returned), built (imported, instantiated), or special.
_REFERENCES = frozenset({"FunctionNode", "TypeNode"})
_NAMED_ONLY = frozenset({"MethodNode", "OperatorFuncNode"})  # bound methods and operator getters: only when the caller names them
_NO_TYPE = frozenset({"CachedNode"})  # refers to a node seen earlier in the file, audited there
_MAX_SCHEMA = 256 << 20
_MAX_DEPTH = 400
_MAX_NODES = 20_000_000


@dataclass(frozen=True)
class Trust:
    """What a caller allows a package to build beyond the library allow-list.

    Attributes:
        pickle: allow pickled packages (a PythonModel): loading them runs whatever code they contain.
        types: type names (``module.Class``) a skops file or a PyTorch package may build.

    Example:
        >>> Trust.of(False, ["mylib.Scaler"]).types
        frozenset({'mylib.Scaler'})
    """

    pickle: bool = False
    types: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, trust: bool = False, trusted_types: Iterable[str] | str | None = None) -> Trust:
        """Trust from the public arguments; ``trusted_types`` may be one name or several.

        Raises:
            InvalidInputError: a name is not ``module.Name``.
            UnsafeModelError: a name that modelcycle never builds (``os.system``, ``builtins.eval`` …).
        """
        from modelcycle.errors import InvalidInputError

        given = [trusted_types] if isinstance(trusted_types, str) else list(trusted_types or ())
        names = frozenset(str(t).strip() for t in given if str(t).strip())
        bad = sorted(t for t in names if "." not in t or not all(p.isidentifier() or p in ("<lambda>", "<locals>") for p in t.split(".")))
        if bad:
            raise InvalidInputError(f"trusted types are names like 'mylib.features.Scaler' (module, then the class or function); "
                                    f"not {', '.join(map(repr, bad))}")
        denied = sorted(t for t in names if _root(t) in DENIED_ROOTS)
        if denied:
            raise UnsafeModelError(
                f"{', '.join(denied)} can run code or touch the system when built; modelcycle does not load them even when trusted"
            )
        return cls(bool(trust), names)

    def __bool__(self) -> bool:  # ``if trust:`` in a flavour written for the old bool argument means pickle
        return self.pickle

    def __or__(self, other: Trust) -> Trust:
        return Trust(self.pickle or other.pickle, self.types | other.types)


def _root(name: str) -> str:
    return name.split(".", 1)[0].split(":", 1)[0]


def _library_module(module: str) -> Any:
    """The module, when it lies inside the libraries models are made of (imported only then), else None."""
    parts = module.split(".")
    if parts[0] not in ("sklearn", "numpy", "scipy", "xgboost", "lightgbm") or _EXCLUDED_PARTS.intersection(parts[1:]):
        return None
    if not all(p.isidentifier() for p in parts):
        return None
    try:
        return importlib.import_module(module)
    except Exception:  # not installed here, or not a module
        return None


def _split(name: str) -> tuple[str, str]:
    module, _, attr = name.rpartition(".")
    return module, attr


@functools.lru_cache(maxsize=4096)
def _resolve(name: str) -> Any:
    module_name, attr = _split(name)
    if not module_name or not attr.isidentifier():
        return None
    module = _library_module(module_name)
    if module is None:
        return None
    obj = getattr(module, attr, None)
    own = getattr(obj, "__module__", None)
    if obj is None or (own != module_name and not (isinstance(obj, type) and own is not None and own.startswith(module_name.split(".")[0]))):
        return None
    return obj


def _numpy_class(obj: type) -> bool:
    import numpy as np

    if issubclass(obj, np.memmap) or (issubclass(obj, np.ndarray) and obj not in (np.ndarray, np.ma.MaskedArray)):
        return False
    return (obj in (np.ndarray, np.dtype, np.ma.MaskedArray, np.random.RandomState, np.random.Generator, np.random.SeedSequence)
            or issubclass(obj, (np.generic, np.dtype, np.random.BitGenerator)))


def _scipy_class(obj: type, module: str) -> bool:
    return module.startswith(("scipy.stats.", "scipy.interpolate.", "scipy.sparse.", "scipy.special."))


def _boosting_class(obj: type, root: str) -> bool:
    try:
        if root == "xgboost":
            import xgboost

            return issubclass(obj, (xgboost.XGBModel, xgboost.Booster))
        import lightgbm

        return issubclass(obj, (lightgbm.LGBMModel, lightgbm.Booster))
    except ImportError:
        return False


@functools.lru_cache(maxsize=4096)
def library_allows(name: str, kind: str = "ObjectNode") -> bool:
    """Whether a node of ``kind`` may build (or reference) the type ``name`` without the caller naming it.

    Example:
        >>> library_allows("sklearn.tree._tree.Tree", "TreeNode")
        True
        >>> library_allows("timeit.timeit", "ConstructorFromReduceNode")
        False
        >>> library_allows("sklearn.metrics._classification.f1_score", "FunctionNode")
        True
        >>> library_allows("sklearn.metrics._classification.f1_score", "ConstructorFromReduceNode")
        False
        >>> library_allows("numpy.memmap")
        False
    """
    if name in _EXACT_BUILDS:
        return kind == "PartialNode"
    if name in _EXTRA_FUNCTIONS:
        return kind == "FunctionNode" and _extra_function(name)
    if kind in _NAMED_ONLY or kind == "PartialNode":
        return False
    obj = _resolve(name)
    if obj is None:
        return False
    module = _split(name)[0]
    root = module.split(".", 1)[0]
    if kind == "FunctionNode":
        if isinstance(obj, type):
            return False
        if root == "sklearn":  # estimators call what they refer to when they predict, with arguments the file binds: pure ones only
            return callable(obj) and (module.startswith(_PURE_SKLEARN_MODULES) or name in _PURE_SKLEARN_FUNCTIONS) \
                and not module.startswith(_IMPURE_SKLEARN_MODULES)
        if root == "numpy":
            import numpy as np

            return isinstance(obj, np.ufunc) or (module == "numpy" and _split(name)[1] in _NUMPY_FUNCTIONS)
        if root == "scipy":
            return module.startswith("scipy.special") and callable(obj)
        return False
    if not isinstance(obj, type):
        return False  # anything that builds calls its type: functions are never called on load
    if root == "sklearn":
        return True
    if root == "numpy":
        return _numpy_class(obj)
    if root == "scipy":
        return _scipy_class(obj, module)
    # XGBoost and LightGBM models inside scikit-learn pipelines: their state is restored, never their
    # constructors called with arguments from the file (a Booster's constructor reads a path).
    return kind in ("ObjectNode", "TypeNode") and _boosting_class(obj, root)


def _extra_function(name: str) -> bool:
    module, attr = _EXTRA_FUNCTIONS[name]
    try:
        return callable(getattr(importlib.import_module(module), attr, None))
    except ImportError:
        return False


@dataclass
class _Node:
    kind: str
    name: str
    called: bool = False  # built, then called with a value from the file (a dict's key types)


def _nodes(schema: Any) -> Iterator[_Node]:
    """Every node of a skops schema (iteratively: depth and size are bounded)."""
    stack: list[tuple[Any, int, bool]] = [(schema, 0, False)]
    count = 0
    while stack:
        item, depth, called = stack.pop()
        count += 1
        if depth > _MAX_DEPTH or count > _MAX_NODES:
            raise UnsafeModelError(f"the model file's structure is deeper than {_MAX_DEPTH} levels or larger than {_MAX_NODES:,} "
                                   "values; refusing to load it")
        if isinstance(item, dict):
            loader = item.get("__loader__")
            if loader is not None:
                node = _Node(str(loader), f"{item.get('__module__')}.{item.get('__class__')}", called)
                yield node
                if called and not (node.kind == "ListNode" and node.name == "builtins.list"):
                    continue  # a called node is refused (or a plain type) as a whole: what it holds need not be named too
            for key, value in item.items():
                if isinstance(value, (dict, list)):
                    # a dict's key types are built and then called with each key: whatever sits there is called on load
                    stack.append((value, depth + 1, called or (loader == "DictNode" and key == "key_types")))
        elif isinstance(item, list):
            stack.extend((v, depth + 1, called) for v in item if isinstance(v, (dict, list)))


def _key_type(node: _Node) -> bool:
    """A node under a dict's key types: only the list holding them and the plain types keys are made of."""
    if node.kind == "ListNode" and node.name == "builtins.list":
        return True
    if node.kind != "TypeNode":
        return False
    if node.name in _KEY_TYPES:
        return True
    obj = _resolve(node.name) if node.name.startswith("numpy.") else None
    if isinstance(obj, type):
        import numpy as np

        return issubclass(obj, (np.integer, np.floating, np.bool_, np.str_))
    return False


def _open_zip(path: Path) -> zipfile.ZipFile:
    """The file as a zip archive whose declared sizes are bounded (no decompression bomb reaches skops)."""
    if not zipfile.is_zipfile(path):
        raise UnsafeModelError(f"{path.name} is not a skops file; refusing to load it")
    archive = zipfile.ZipFile(path)
    infos = archive.infolist()
    packed = max(path.stat().st_size, 1)
    unpacked = sum(i.file_size for i in infos)
    if len(infos) > 1_000_000 or unpacked > 64 * packed + (256 << 20):
        archive.close()
        raise UnsafeModelError(f"{path.name} would expand to {unpacked:,} bytes from {packed:,}; refusing to decompress it")
    return archive


def _read_schema(archive: zipfile.ZipFile, path: Path) -> Any:
    try:
        info = archive.getinfo("schema.json")
    except KeyError:
        raise UnsafeModelError(f"{path.name} is not a skops file (it has no schema.json); refusing to load it") from None
    if info.file_size > _MAX_SCHEMA:
        raise UnsafeModelError(f"{path.name}'s schema is {info.file_size:,} bytes; refusing to read more than {_MAX_SCHEMA:,}")
    with archive.open(info) as f:
        raw = f.read(_MAX_SCHEMA + 1)
    if len(raw) > _MAX_SCHEMA:
        raise UnsafeModelError(f"{path.name}'s schema is larger than {_MAX_SCHEMA:,} bytes; refusing to read it")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise UnsafeModelError(f"{path.name} has a schema that is not valid JSON (or is nested too deeply); refusing to load it") from None


def audit_skops(path: str | Path, trust: Trust, listed: Iterable[str] = (), saving: bool = False) -> list[str]:
    """The type names skops must be told to trust to load ``path``, or UnsafeModelError naming every refused one.

    Nothing in the file is built or imported here; library modules are imported only to check a
    name that lies inside them.

    Args:
        path: a ``.skops`` file.
        trust: what the caller allows beyond the library rules.
        listed: the types the package's manifest says it needs (each must be allowed too).
        saving: word the refusal for someone saving a model rather than loading one.
    """
    import skops.io as sio

    file = Path(path)
    with _open_zip(file) as archive:
        schema = _read_schema(archive, file)
        try:
            untrusted = set(sio.get_untrusted_types(file=file))
        except Exception as e:  # skops cannot even read the tree: a damaged or crafted file
            raise UnsafeModelError(f"{file.name} is not a loadable skops file ({type(e).__name__}: {str(e)[:200]}); refusing to load it") from None
    refused: dict[str, str] = {}
    allowed: set[str] = set()
    for node in _nodes(schema):
        if node.called and not _key_type(node):
            refused[node.name] = "can run code when loaded"  # skops would call it with a key from the file
            continue
        if node.kind in _NO_TYPE or node.name not in untrusted:
            continue
        if node.kind == "TypeNode" and node.name in _BUILTIN_TYPES:
            allowed.add(node.name)
        elif _root(node.name) in DENIED_ROOTS and node.name not in _EXACT_BUILDS:
            refused[node.name] = "can run code when loaded"
        elif node.name in trust.types or library_allows(node.name, node.kind):
            allowed.add(node.name)
        else:
            refused.setdefault(node.name, "not a library type modelcycle allows" if node.kind not in _REFERENCES else "not an allowed reference")
    # Types skops reports without a node of its own (the constructor of a reduced object, bound methods): by name.
    for name in sorted(untrusted - allowed - set(refused)):
        if name in trust.types or library_allows(name, "ObjectNode"):
            allowed.add(name)
        else:
            refused[name] = "not a library type modelcycle allows"
    for name in listed:
        if name not in allowed and name not in trust.types and not library_allows(name) and not library_allows(name, "FunctionNode") \
                and name not in _EXACT_BUILDS:
            refused.setdefault(name, "listed by the package, not allowed by the loader")
    unloadable = sorted(n for n in set(refused) | allowed if "<lambda>" in n or "<locals>" in n)
    if unloadable:
        raise UnsafeModelError(
            f"{file.name} refers to {', '.join(unloadable)}: a lambda, or a function or class defined inside a function, cannot be "
            "imported again when the model is loaded; define it at the top level of a module of yours and refer to that")
    if refused:
        names = sorted(refused)
        code_runs = [n for n in names if refused[n] == "can run code when loaded"]
        if code_runs:
            raise UnsafeModelError(f"{file.name} holds types that can run code when loaded: {', '.join(code_runs)}; refusing to load it")
        fix = (f"log the model with trusted_types={names!r} (whoever loads it will have to name them too)" if saving else
               f"load with trusted_types={names!r} (on the command line: {' '.join('--trusted-type ' + n for n in names)}, "
               "or MODELCYCLE_TRUSTED_TYPES for servers and the agent)")
        raise UnsafeModelError(
            f"{file.name} holds types modelcycle does not load without your say-so: {', '.join(names)}; if you wrote them or trust "
            f"their library, {fix}"
        )
    return sorted(allowed)


def check_loaded(obj: Any, what: str, proba: bool = False, estimator: bool = False) -> None:
    """Refuse a loaded object that is not a usable model: no ``predict`` (a dict, a float …), or structures that cannot
    be served safely (tree indices pointing outside their arrays, which crash the process on the first prediction; a text
    vectorizer that opens the files a request names).

    Args:
        proba: the manifest promises ``predict_proba``.
        estimator: a pipeline step's stored estimator, which may be a transformer (no ``predict``): its structures are checked.

    Raises:
        UnsafeModelError: naming what is wrong.
    """
    if not estimator and not callable(getattr(obj, "predict", None)):
        raise UnsafeModelError(f"{what} holds a {type(obj).__module__}.{type(obj).__qualname__}, which has no predict(); "
                               "it is not a model, refusing to load it")
    if proba and not callable(getattr(obj, "predict_proba", None)):
        raise UnsafeModelError(f"{what}'s manifest promises predict_proba, but the loaded {type(obj).__qualname__} has none; refusing to load it")
    _check_structures(obj, what)


def _children(obj: Any) -> Iterator[Any]:
    import numpy as np

    if isinstance(obj, dict):
        yield from obj.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        yield from obj
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            yield from obj.ravel()
    elif isinstance(obj, functools.partial):
        yield obj.func
        yield from obj.args
        yield from obj.keywords.values()
    elif not isinstance(obj, (str, bytes, int, float, type, types.FunctionType, types.BuiltinFunctionType, io.IOBase)):
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            yield from attrs.values()


def _check_structures(root: Any, what: str, limit: int = 2_000_000) -> None:
    """Walk the loaded object graph and check the index arrays of the tree structures scikit-learn reads without bounds checks.

    ``n_features_in_`` of the nearest estimator above a structure bounds the features its splits may read.
    """
    checks = _structure_checks()
    seen: set[int] = set()
    stack: list[tuple[Any, int | None]] = [(root, None)]
    while stack and len(seen) < limit:
        obj, features = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        for cls, check in checks:
            if isinstance(obj, cls):
                problem = check(obj, features)
                if problem:
                    raise UnsafeModelError(f"{what} holds a {type(obj).__name__} that cannot be served safely ({problem}); refusing to load it")
        own = getattr(obj, "__dict__", {}).get("n_features_in_") if not isinstance(obj, type) else None
        bound = int(own) if isinstance(own, int) and not isinstance(own, bool) else features
        stack.extend((child, bound) for child in _children(obj))


@functools.lru_cache(maxsize=1)
def _structure_checks() -> list[tuple[type, Any]]:
    out: list[tuple[type, Any]] = []
    try:
        from sklearn.tree._tree import Tree

        out.append((Tree, _check_tree))
    except ImportError:
        pass
    try:
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

        out.append((TreePredictor, _check_predictor))
    except ImportError:
        pass
    try:
        from sklearn.neighbors import BallTree, KDTree

        out.append(((BallTree, KDTree), _check_binary_tree))
    except ImportError:
        pass
    try:
        from sklearn.feature_extraction.text import _VectorizerMixin

        out.append((_VectorizerMixin, _check_vectorizer))
    except ImportError:
        pass
    return out


def _check_vectorizer(vectorizer: Any, features: int | None) -> str | None:
    """A text vectorizer reads what it is given as text: with ``input="filename"`` or ``"file"`` it would open the paths a
    request sends (reading any file the server can, or /dev/zero without end)."""
    if getattr(vectorizer, "input", "content") != "content":
        return f"input={vectorizer.input!r}: it would read files named in each request; only input='content' is served"
    return None


def _children_ok(index: Any, left: Any, right: Any, leaf: Any, n: int) -> bool:
    import numpy as np

    inner = ~leaf
    return bool(np.all((left[inner] > index[inner]) & (left[inner] < n) & (right[inner] > index[inner]) & (right[inner] < n)))


def _check_tree(tree: Any, features: int | None) -> str | None:
    import numpy as np

    n = int(tree.node_count)
    left, right, feature = tree.children_left[:n], tree.children_right[:n], tree.feature[:n]
    if len(left) != n or len(right) != n:
        return "fewer nodes than it counts"
    leaf = left == -1
    if np.any(leaf != (right == -1)):
        return "a node with one child"
    if not _children_ok(np.arange(n), left, right, leaf, n):
        return "a child index outside the tree"
    if np.any((feature[~leaf] < 0) | (feature[~leaf] >= int(tree.n_features))):
        return "a split on a feature it does not have"
    return None


def _check_predictor(predictor: Any, features: int | None) -> str | None:
    import numpy as np

    nodes = predictor.nodes
    n = len(nodes)
    if n == 0:
        return "no nodes"
    leaf = nodes["is_leaf"].astype(bool)
    if not _children_ok(np.arange(n), nodes["left"], nodes["right"], leaf, n):
        return "a child index outside the tree"
    used = nodes["feature_idx"][~leaf]
    if np.any(used < 0) or (features is not None and np.any(used >= features)):
        return "a split on a feature it does not have"
    categorical = ~leaf & nodes["is_categorical"].astype(bool)
    if np.any(categorical):
        bitsets = len(predictor.raw_left_cat_bitsets)
        if np.any((nodes["bitset_idx"][categorical] < 0) | (nodes["bitset_idx"][categorical] >= bitsets)):
            return "a categorical split without its category set"
    return None


def _check_binary_tree(tree: Any, features: int | None) -> str | None:
    import numpy as np

    data, idx, node_data, _ = tree.get_arrays()
    n = len(data)
    if len(idx) != n or (n and (idx.min() < 0 or idx.max() >= n)):
        return "an index outside its data"
    if len(node_data) and (np.any(node_data["idx_start"] < 0) | np.any(node_data["idx_end"] > n)
                           | np.any(node_data["idx_start"] > node_data["idx_end"])):
        return "a node range outside its data"
    return None
