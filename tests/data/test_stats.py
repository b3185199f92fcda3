"""Drift statistics: known values, the invariants they must keep, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelcycle.data import stats
from modelcycle.errors import InvalidInputError

counts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=2, max_size=30).filter(lambda c: sum(c) > 0)


@given(counts)
def test_every_distance_of_a_distribution_to_itself_is_zero(c: list[int]) -> None:
    assert stats.psi(c, c) == pytest.approx(0.0, abs=1e-12)
    assert stats.js_distance(c, c) == pytest.approx(0.0, abs=1e-7)
    assert stats.linf_distance(c, c) == 0.0
    assert stats.chi_square(c, c)[1] == pytest.approx(1.0)


@given(counts, st.randoms(use_true_random=False))
def test_bin_order_does_not_matter(c: list[int], rnd) -> None:
    other = [x + 1 for x in reversed(c)]
    order = list(range(len(c)))
    rnd.shuffle(order)
    for fn in (stats.psi, stats.js_distance, stats.linf_distance):
        assert fn([c[i] for i in order], [other[i] for i in order]) == pytest.approx(fn(c, other))


@given(counts, counts)
def test_bounds_and_symmetry(a: list[int], b: list[int]) -> None:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    if sum(a) == 0 or sum(b) == 0:
        return
    js = stats.js_distance(a, b)
    assert 0.0 <= js <= 1.0 + 1e-12
    assert js == pytest.approx(stats.js_distance(b, a))
    assert 0.0 <= stats.linf_distance(a, b) <= 1.0
    assert stats.psi(a, b) >= -1e-12
    assert stats.psi(a, b) == pytest.approx(stats.psi(b, a))  # PSI is symmetric by construction


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200), st.randoms(use_true_random=False))
def test_sample_statistics_ignore_row_order(x: list[float], rnd) -> None:
    y = [v * 1.5 + 1 for v in x]
    shuffled = list(y)
    rnd.shuffle(shuffled)
    assert stats.ks_two_sample(x, y) == pytest.approx(stats.ks_two_sample(x, shuffled))
    assert stats.ks_two_sample(x, x)[0] == 0.0


def test_known_values() -> None:
    assert stats.js_distance([5, 0], [0, 5]) == 1.0
    assert stats.linf_distance([8, 2], [5, 5]) == pytest.approx(0.3)
    assert stats.psi([50, 50], [90, 10]) == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5), rel=1e-9)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000)
    stat, p = stats.ks_two_sample(a, b)
    assert 0.15 < stat < 0.25 and p < 1e-10
    assert stats.wasserstein_normalized(a, b) == pytest.approx(0.5, abs=0.05)
    levels = (np.arange(100) + 0.5) / 100
    assert stats.wasserstein_from_quantiles(np.quantile(a, levels), np.quantile(b, levels), float(np.std(a))) == pytest.approx(
        stats.wasserstein_normalized(a, b), abs=0.03)
    stat, p = stats.chi_square([500, 300, 200], [200, 300, 500])
    assert p < 1e-20 and stat > 100


def test_unseen_categories_are_aligned_and_counted() -> None:
    keys, ref, cur = stats.align_counts({"a": 90, "b": 10}, {"a": 80, "b": 10, "unseen": 10})
    assert keys == ["a", "b", "unseen"]
    assert stats.linf_distance(ref, cur) == pytest.approx(0.1)
    assert stats.psi(ref, cur) > 0.05, "a category seen only now must raise the index"


def test_missing_values_are_ignored_by_sample_statistics() -> None:
    assert stats.ks_two_sample([1.0, np.nan, 2.0], [1.0, 2.0]) == (0.0, 1.0)


def test_constant_reference_gives_zero_or_infinite_normalised_distance() -> None:
    assert stats.wasserstein_normalized([1, 1, 1], [1, 1]) == 0.0
    assert stats.wasserstein_normalized([1, 1, 1], [2, 2]) == math.inf


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: stats.psi([1, 2], [1, 2, 3]), "same bins"),
        (lambda: stats.psi([], []), "non-empty"),
        (lambda: stats.js_distance([1, -1], [1, 1]), "non-negative"),
        (lambda: stats.linf_distance([0, 0], [1, 1]), "at least one"),
        (lambda: stats.ks_two_sample([np.nan], [1.0]), "no values"),
        (lambda: stats.ks_two_sample(["a"], [1.0]), "numbers"),
        (lambda: stats.wasserstein_normalized([1.0, np.inf], [1.0]), "inf"),
        (lambda: stats.wasserstein_from_quantiles([1, 2], [1, 2], scale=0), "positive"),
    ],
)
def test_bad_input_is_named(call, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        call()
