"""Experiment tracking: runs, params, metrics, tags, artifacts, datasets and reproducibility."""

from __future__ import annotations

from modelcycle.tracking.client import Client, GcReport, runs_frame
from modelcycle.tracking.fluent import *  # noqa: F403
from modelcycle.tracking.fluent import __all__ as _fluent_all
from modelcycle.tracking.run import ActiveRun

__all__ = ["ActiveRun", "Client", "GcReport", "runs_frame", *_fluent_all]
