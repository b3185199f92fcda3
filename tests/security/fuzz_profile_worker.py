"""Mutate the sketch bytes of a stored profile; whatever from_bytes accepts must survive compare, merge and summary."""
import base64
import json
import random
import sys
import zlib

import numpy as np
import pandas as pd

from modelcycle.data import Profile, compare, profile
from modelcycle.errors import ModelcycleError


def main(seed: int, trials: int) -> None:
    rng = random.Random(seed)
    base = profile(pd.DataFrame({"x": np.random.default_rng(0).normal(size=5000), "s": [f"v{i % 3000}" for i in range(5000)]}))
    d0 = base.to_dict()
    accepted = 0
    for _ in range(trials):
        d = json.loads(json.dumps(d0))
        col = d["columns"][rng.randrange(2)]
        key = rng.choice([k for k in ("kll", "hll", "freq") if col.get(k)])
        raw = bytearray(base64.b64decode(col[key]))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(min(len(raw), 64) if rng.random() < 0.7 else len(raw))
            raw[pos] = rng.randrange(256)
        if rng.random() < 0.2:
            raw = raw[: rng.randrange(len(raw))]
        col[key] = base64.b64encode(bytes(raw)).decode()
        try:
            p = Profile.from_bytes(zlib.compress(json.dumps(d).encode()))
        except ModelcycleError:
            continue
        accepted += 1
        try:
            compare(p, base)
            compare(base, p)
            p.merge(base).summary()
            p.to_html()
        except ModelcycleError:
            pass
    print("ok", seed, accepted)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
