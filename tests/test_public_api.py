"""The public API is pinned, loads lazily, and `import modelcycle` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import modelcycle as mc

PUBLIC = [
    "ActiveRun", "Client", "Experiment", "Metric", "ModelcycleError", "Run", "RunStatus", "Settings", "__version__",
    "active_run", "autolog", "data", "download_artifacts", "end_run", "errors", "flush", "get_client", "get_metric_history",
    "get_run", "list_experiments", "log_artifact", "log_dataset", "log_dict", "log_figure", "log_metric", "log_metrics",
    "log_param", "log_params", "log_table", "log_text", "search_runs", "seed_everything", "set_client",
    "set_experiment", "set_tag", "set_tags", "start_run",
    # models, registry, evaluation and gates
    "AliasEvent", "ModelVersion", "Policy", "Verdict", "delete_alias", "evaluate", "evaluation", "get_model_version",
    "load_model", "log_model", "model_history", "models", "promote", "register_model", "rollback", "search_model_versions",
    "set_alias", "validate_model",
    # pipelines, tuning and feature selection
    "PipelineResult", "TrialPruned", "choice", "intrange", "loguniform", "pipeline", "register_materializer", "select_features",
    "step", "tune", "uniform",
    # serving
    "log_labels", "read_predictions",
    # monitoring
    "AlertRules", "MonitorReport", "labelled_predictions", "monitor",
]
HEAVY = ["pandas", "numpy", "sklearn", "sqlalchemy", "alembic", "fastapi", "dask", "pyarrow", "typer", "rich"]


def test_public_names_are_pinned() -> None:
    assert sorted(mc.__all__) == sorted(PUBLIC)


def test_every_public_name_resolves() -> None:
    for name in PUBLIC:
        value = getattr(mc, name)
        if name not in ("errors", "data", "models", "evaluation", "__version__"):
            assert callable(value), f"mc.{name} should be a function or a class, not {type(value).__name__}"


def test_errors_derive_from_one_root() -> None:
    from modelcycle import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if name != "ModelcycleWarning":
            assert issubclass(cls, mc.ModelcycleError), name


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_loads_no_heavy_library() -> None:
    assert _loaded("import modelcycle") == []


def test_cli_help_loads_no_data_library() -> None:
    code = "import sys\nsys.argv = ['modelcycle', '--help']\nfrom modelcycle.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass"
    loaded = _loaded(code)
    assert not set(loaded) & {"pandas", "numpy", "sklearn", "sqlalchemy", "alembic", "fastapi", "dask", "pyarrow"}, loaded


def test_module_functions_delegate_to_one_client() -> None:
    from modelcycle.tracking import fluent

    client = mc.Client(mc.Settings.for_home("/nonexistent-never-opened", capture=False))
    mc.set_client(client)
    try:
        assert fluent.get_client() is client
    finally:
        mc.set_client(None)


def test_the_type_checking_imports_match_the_lazy_exports() -> None:
    """Editors see the names through the TYPE_CHECKING block: it must name the same things from the same modules."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(mc.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    seen: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            seen[alias.asname or alias.name] = node.module if node.module != "modelcycle" else f"modelcycle.{alias.name}"
    imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}  # at the top
    expected = {name: (module if name not in mc._MODULES else f"modelcycle.{name}") for name, module in mc._EXPORTS.items()
                if name not in imported}
    assert seen == expected


def test_the_version_has_one_source() -> None:
    from importlib.metadata import version
    from pathlib import Path

    assert mc.__version__ == version("modelcycle")
    root = Path(mc.__file__).parent
    written = [p for p in root.rglob("*.py") if f'"{mc.__version__}"' in p.read_text()]
    assert written == [], f"the version is written in {written}; it comes from pyproject.toml"
