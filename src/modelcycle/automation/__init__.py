"""Automation: the project spec (``modelcycle.yaml``), triggers, the controller that retrains, and lineage."""

from modelcycle.automation.agent import Agent, Hit, data_fingerprint
from modelcycle.automation.ci import CiReport, run_ci
from modelcycle.automation.lineage import lineage
from modelcycle.automation.scaffold import init_project
from modelcycle.automation.spec import ProjectSpec, SpecError, Trigger, load_spec

__all__ = ["Agent", "CiReport", "Hit", "ProjectSpec", "SpecError", "Trigger", "data_fingerprint", "init_project", "lineage", "load_spec",
           "run_ci"]
