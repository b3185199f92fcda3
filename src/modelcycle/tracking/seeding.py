"""One call to seed every random number generator a training script is likely to use."""

from __future__ import annotations

import os
import random
import sys
from importlib.util import find_spec

__all__ = ["seed_everything"]


def seed_everything(seed: int | None = None) -> tuple[int, list[str]]:
    """Seed ``random``, NumPy and (when installed) PyTorch; returns the seed and what was seeded.

    With no seed, one is drawn from the operating system, so it can still be recorded.
    ``PYTHONHASHSEED`` is set for child processes (it cannot change this process's hashing).

    Example:
        >>> seed_everything(42)[0]
        42
    """
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        from modelcycle.errors import InvalidValueError

        raise InvalidValueError(f"seed must be an integer between 0 and 2**32 - 1, got {seed!r}")
    seeded = ["random"]
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "numpy" in sys.modules or find_spec("numpy") is not None:
        import numpy as np

        np.random.seed(seed)
        seeded.append("numpy")
    if "torch" in sys.modules or find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        seeded.append("torch")
    return seed, seeded
