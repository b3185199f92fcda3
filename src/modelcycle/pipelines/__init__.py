"""Pipelines: plain-Python steps whose data flow is the DAG, cached, tracked, on threads or Dask; tuning and feature selection."""

from modelcycle.errors import PipelineError
from modelcycle.pipelines.core import Pipeline, Step, pipeline, step
from modelcycle.pipelines.engine import PipelineResult, StepResult
from modelcycle.pipelines.features import FeatureSelection, select_features
from modelcycle.pipelines.materialize import register_materializer
from modelcycle.pipelines.tune import TrialPruned, TuneResult, choice, intrange, loguniform, tune, uniform

__all__ = [
    "FeatureSelection",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "Step",
    "StepResult",
    "TrialPruned",
    "TuneResult",
    "choice",
    "intrange",
    "loguniform",
    "pipeline",
    "register_materializer",
    "select_features",
    "step",
    "tune",
    "uniform",
]
