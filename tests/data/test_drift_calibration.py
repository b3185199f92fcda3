"""Drift verdicts a user can trust: few false alarms on small samples, right verdicts on columns
with thousands of categories. ``bench/drift.py`` prints the full calibration table (200 seeds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelcycle.data import compare, profile
from modelcycle.data.profile import EXACT_LIMIT_TEXT


def population(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One distribution with the column shapes a data scientist meets."""
    return pd.DataFrame({
        "normal": rng.normal(0, 1, n),
        "lognormal": rng.lognormal(0, 1, n),
        "age": np.clip(rng.normal(40, 12, n).round(), 18, 90).astype(int),
        "flag": rng.integers(0, 2, n),
        "visits": rng.poisson(2, n),
        "plan": rng.choice(["free", "basic", "pro", "team", "enterprise"], n, p=[0.5, 0.25, 0.15, 0.07, 0.03]),
        "city": rng.choice([f"c{i}" for i in range(50)], n, p=np.r_[np.full(10, 0.05), np.full(40, 0.0125)]),
    })


@pytest.mark.parametrize("reference_rows", [1000, 300_000])
def test_small_samples_of_the_same_distribution_raise_few_false_alarms(reference_rows: int) -> None:
    seeds, sizes = 60, (50, 300, 1000)
    fixed = profile(population(reference_rows, np.random.default_rng(99))) if reference_rows > 10_000 else None
    alarms = {size: dict.fromkeys(population(1, np.random.default_rng(0)).columns, 0) for size in sizes}
    for size in sizes:
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            reference = fixed if fixed is not None else profile(population(reference_rows, rng))
            for column in compare(reference, population(size, rng)).drifted_columns:
                alarms[size][column] += 1
    for size, counts in alarms.items():
        total = sum(counts.values()) / (seeds * len(counts))
        assert total <= 0.04, f"{size} rows against {reference_rows:,}: {total:.1%} false alarms over all columns {counts}"
        worst = max(counts, key=counts.__getitem__)
        assert counts[worst] / seeds <= 0.1, f"{size} rows against {reference_rows:,}: {worst} alarmed {counts[worst]} times"


def test_small_samples_still_see_a_real_change() -> None:
    rng = np.random.default_rng(5)
    reference = profile(population(100_000, rng))
    current = population(300, rng)
    current["normal"] += 0.6
    current["plan"] = rng.choice(["free", "basic", "pro", "team", "enterprise"], 300, p=[0.2, 0.2, 0.2, 0.2, 0.2])
    assert set(compare(reference, current).drifted_columns) == {"normal", "plan"}


def categories(n: int, rng: np.random.Generator, distinct: int) -> pd.DataFrame:
    return pd.DataFrame({"sku": rng.choice([f"sku-{i:06d}" for i in range(distinct)], n)})


@pytest.mark.parametrize("distinct", [3000, 3 * EXACT_LIMIT_TEXT])
def test_many_equally_common_categories_do_not_drift_between_samples(distinct: int) -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        ref_rows = categories(40_000, rng, distinct)
        cur_rows = categories(20_000, rng, distinct)
        report = compare(profile(ref_rows), profile(cur_rows))
        sku = report.columns["sku"]
        assert not sku.drifted, f"seed {seed}: {sku}"
        truly_unseen = set(cur_rows["sku"]) - set(ref_rows["sku"])
        assert set(sku.unseen) <= truly_unseen, "'unseen' only for values the reference never had"
        if distinct > EXACT_LIMIT_TEXT:
            assert "hashed" in sku.method and "hash buckets" in sku.note, "the method is named"
            assert sku.unseen == () and "not checked" in sku.note
        else:
            assert set(sku.unseen) == truly_unseen


@pytest.mark.parametrize("distinct", [3000, 3 * EXACT_LIMIT_TEXT])
def test_a_real_change_in_many_categories_is_found(distinct: int) -> None:
    rng = np.random.default_rng(1)
    reference = profile(categories(40_000, rng, distinct))
    skewed = pd.DataFrame({"sku": rng.choice([f"sku-{i:06d}" for i in range(200)], 5000)})  # a few took over
    assert compare(reference, skewed).columns["sku"].drifted
