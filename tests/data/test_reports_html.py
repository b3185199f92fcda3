"""HTML reports: self-contained pages with a chart where people want one, and nothing executable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

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
