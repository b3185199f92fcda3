"""HTML reports: self-contained pages with a chart where people want one, and nothing executable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcycle.data import compare, infer_schema, profile, validate


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 4000), "<script>alert(1)</script>": rng.choice(["a", "b"], 4000)})
    cur = pd.DataFrame({"x": rng.normal(1, 1, 4000), "<script>alert(1)</script>": rng.choice(["a", "b", "c"], 4000)})
    return ref, cur


def test_drift_page_has_a_chart_per_column_and_escapes_names(tmp_path: Path) -> None:
    ref, cur = frames()
    page = compare(ref, cur).to_html(str(tmp_path / "drift.html"))
    assert (tmp_path / "drift.html").read_text() == page
    assert page.count("<svg") == 2 and "dataset drift" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_validation_page_charts_each_failing_column() -> None:
    ref, cur = frames()
    page = validate(cur, infer_schema(ref)).to_html()
    assert "failed" in page and page.count("<svg") == 1 and "unseen_categories" in page
    assert "&#x27;c&#x27;" in page, "the offending value is shown"


def test_profile_page_covers_every_column() -> None:
    ref, _ = frames()
    page = profile(ref).to_html()
    assert page.count('class="card"') == 2 and page.count("<svg") == 2


def mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "flag": rng.integers(0, 2, n),
        "age": np.clip(rng.normal(40, 12, n).round(), 18, 90).astype(int),
        "income": rng.lognormal(10, 1, n),
        "joined": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
        "plan": rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
        "city": rng.choice([f"c{i}" for i in range(40)], n),
        "note": [f"free text {i}" for i in range(n)],
        "active": rng.integers(0, 2, n).astype(bool),
        "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(0, 1, n)),
    })


def drawn(page: str) -> dict[str, dict[str, float]]:
    """Per card and series, the sum of the bar heights the page draws (read from the bars' titles)."""
    import re

    out: dict[str, dict[str, float]] = {}
    for card in page.split('<div class="card">')[1:]:
        name = re.search(r"<h2>(.*?)[ <]", card).group(1)  # type: ignore[union-attr]
        for series, value in re.findall(r"<title>(\w+) [^<]*: ([0-9.e+-]+)</title>", card):
            out.setdefault(name, {}).setdefault(series, 0.0)
            out[name][series] += float(value)
    return out


def test_every_drawn_distribution_sums_to_one() -> None:
    from modelcycle.data.report import distribution

    ref, cur = profile(mixed(5000, 0)), profile(mixed(3000, 1))
    for name in ref.columns:
        labels, shares = distribution([ref.columns[name], cur.columns[name]])
        assert labels, f"{name} has a chart"
        for s in shares:
            assert sum(s) == pytest.approx(1.0, abs=0.01), f"{name}: {sum(s)}"
    for page in (profile(mixed(5000, 0)).to_html(), compare(mixed(5000, 0), mixed(3000, 1)).to_html()):
        sums = drawn(page)
        assert set(sums) == set(mixed(10, 0).columns)
        for name, series in sums.items():
            for label, total in series.items():
                assert total == pytest.approx(1.0, abs=0.01), f"{name} {label} sums to {total}"


def test_a_zero_one_column_shows_both_bars() -> None:
    import re

    page = profile(mixed(5000, 0)[["flag"]]).to_html()
    bars = re.findall(r"<title>share (\S+): ([0-9.]+)</title>", page)
    assert [label for label, _ in bars] == ["0", "1"]
    assert all(0.45 < float(v) < 0.55 for _, v in bars)
    page = compare(mixed(5000, 0)[["flag"]], mixed(5000, 1)[["flag"]]).to_html()
    assert len(re.findall(r"<title>reference (0|1): ", page)) == 2 and len(re.findall(r"<title>current (0|1): ", page)) == 2
