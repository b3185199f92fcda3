"""Serving: models by alias over HTTP (Open Inference Protocol, MLflow-compatible bodies), hot swap, shadow, prediction log."""

from modelcycle.serving.predlog import PredictionLog

__all__ = ["PredictionLog", "create_app"]


def __getattr__(name: str):  # the app pulls in FastAPI: only when asked for
    if name == "create_app":
        from modelcycle._deps import require

        for module in ("fastapi", "prometheus_client"):
            require(module, "serving a model")  # MissingDependencyError naming modelcycle[serve]
        from modelcycle.serving.app import create_app

        return create_app
    raise AttributeError(name)
