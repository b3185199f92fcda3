"""Automation: the project spec (``modelcycle.yaml``), triggers, the controller that retrains, and lineage."""

from modelcycle.automation.agent import Agent, Hit, data_fingerprint
from modelcycle.automation.lineage import lineage
from modelcycle.automation.spec import ProjectSpec, SpecError, Trigger, load_spec

__all__ = ["Agent", "Hit", "ProjectSpec", "SpecError", "Trigger", "data_fingerprint", "lineage", "load_spec"]
