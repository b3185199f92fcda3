"""Friendly run names such as ``brave-otter-17``, drawn from the OS's randomness (not the
seeded ``random`` module, so seeding a script never makes two runs share a name)."""

from __future__ import annotations

import random

__all__ = ["run_name"]

_ADJ = (
    "amber agile bold brave bright calm clever cosmic crisp daring deft eager fair fierce gentle "
    "golden grand happy honest jolly keen kind lively lucid merry mighty nimble noble polite proud "
    "quick quiet rapid regal serene sharp shiny silent smart solid steady sunny swift tidy vivid warm wise"
).split()
_NOUN = (
    "badger bear beaver bison crane dolphin eagle falcon finch fox gecko heron ibis jaguar koala lark "
    "lemur lion lynx marten mole moose newt orca otter owl panda puffin quail raven robin salmon seal "
    "shark sloth stork swan tiger toad trout turtle viper walrus whale wolf wombat yak zebra"
).split()
_rng = random.SystemRandom()


def run_name() -> str:
    """A new friendly name.

    Example:
        >>> len(run_name().split("-"))
        3
    """
    return f"{_rng.choice(_ADJ)}-{_rng.choice(_NOUN)}-{_rng.randint(1, 99)}"
