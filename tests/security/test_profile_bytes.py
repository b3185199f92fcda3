"""Profiles arrive from files others wrote (model packages, the artifact store): damaged or crafted bytes
are refused with one message, and whatever is accepted is safe to use — never a crash of the process."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.data import Profile, compare, profile
from modelcycle.errors import InvalidInputError


def stored(**changes: object) -> bytes:
    d = profile(pd.DataFrame({"x": np.random.default_rng(0).normal(size=5000)})).to_dict()
    d["columns"][0].update(changes)
    return zlib.compress(json.dumps(d).encode())


def test_a_sketch_with_three_bytes_edited_is_refused_not_dereferenced() -> None:
    d = profile(pd.DataFrame({"x": np.random.default_rng(0).normal(size=5000)})).to_dict()
    raw = bytearray(base64.b64decode(d["columns"][0]["kll"]))
    for pos, value in [(9229, 69), (27, 136), (48, 176)]:  # levels and items that crashed the sketch library
        raw[pos] = value
    with pytest.raises(InvalidInputError, match="quantile sketch is damaged or crafted"):
        Profile.from_bytes(stored(kll=base64.b64encode(bytes(raw)).decode()))
    Profile.from_bytes(stored())  # the untouched one still reads


@pytest.mark.parametrize(("field", "value"), [("count", "300"), ("count", -1), ("base", "complex"), ("kll", None),
                                              ("min", "low"), ("hashed", [2**63] * 128), ("mean", [1])])
def test_hand_edited_fields_are_refused_at_once(field: str, value: object) -> None:
    with pytest.raises(InvalidInputError):
        Profile.from_bytes(stored(**{field: value}))


def test_random_damage_never_crashes_the_process() -> None:
    """Mutations of the sketches' bytes in a child process: it must finish (a crash would end it with a signal)."""
    worker = Path(__file__).with_name("fuzz_profile_worker.py")
    for seed in (1, 2):
        out = subprocess.run([sys.executable, str(worker), str(seed), "120"], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0 and out.stdout.startswith("ok"), (out.returncode, out.stderr[-2000:])


def test_values_of_any_type_survive_their_own_round_trip() -> None:
    frame = pd.DataFrame({"raw": [b"red", b"green", b"blue"] * 40, "pairs": pd.Categorical([(1, 2), (3, 4)] * 60)})
    again = Profile.from_bytes(profile(frame).to_bytes())
    assert compare(again, frame).drifted_columns == []
