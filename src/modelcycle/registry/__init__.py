"""The model registry: versions, aliases with an audit log, verdict-gated promotion, safe loading by URI."""

from modelcycle.registry.registry import Registry, current_actor
from modelcycle.registry.uri import ModelRef, parse_model_uri

__all__ = ["ModelRef", "Registry", "current_actor", "parse_model_uri"]
