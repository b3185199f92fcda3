"""The search language: what parses, what it means, and errors that point at the problem."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelcycle.errors import FilterSyntaxError
from modelcycle.store.metadata.query import BoolOp, Comparison, Not, parse_filter, parse_order_by


def test_mlflow_style_filter() -> None:
    node = parse_filter("metrics.auc > 0.8 and params.model = 'rf' and tags.team != 'x'")
    assert isinstance(node, BoolOp) and node.op == "and"
    assert [(c.field.kind, c.field.key, c.op, c.value) for c in node.items] == [
        ("metric", "auc", ">", 0.8), ("param", "model", "=", "rf"), ("tag", "team", "!=", "x"),
    ]


def test_keys_with_dots_slashes_and_quotes() -> None:
    assert parse_filter("metrics.train.loss < 1").field.key == "train.loss"
    assert parse_filter("metrics.val/loss < 1").field.key == "val/loss"
    assert parse_filter('params."my param" = "a b"').field.key == "my param"
    assert parse_filter("tags.`a b` = 'it''s'").value == "it's"


def test_precedence_and_not() -> None:
    node = parse_filter("status = 'FAILED' or metrics.a > 1 and not metrics.b < 2")
    assert node.op == "or"
    assert isinstance(node.items[1], BoolOp) and node.items[1].op == "and"
    assert isinstance(node.items[1].items[1], Not)


def test_dates_become_timestamps() -> None:
    assert parse_filter("start_time >= '1970-01-02'").value == 86400.0


def test_empty_filter_is_none() -> None:
    assert parse_filter("") is None
    assert parse_filter("   ") is None


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("metrics.auc >", 13, "expected a value"),
        ("foo = 1", 0, "unknown field 'foo'"),
        ("metrics.auc > 0.8 params.x = 1", 18, "combine conditions"),
        ("metrics.auc > 'high'", 14, "is a number"),
        ("metrics.auc ~ 1", 12, "unexpected character"),
        ("(metrics.a > 1", 14, "expected ')'"),
        ("metrics.a like 'x%'", 10, "compares text"),
        ("start_time > 'yesterday'", 13, "not a date"),
    ],
)
def test_errors_name_the_position(text: str, position: int, words: str) -> None:
    with pytest.raises(FilterSyntaxError, match=re.escape(words)) as info:
        parse_filter(text)
    assert info.value.position == position
    assert f"position {position}" in str(info.value)


def test_order_by() -> None:
    keys = parse_order_by(["metrics.auc DESC", "start_time", "params.model asc"])
    assert [(k.field.key, k.descending) for k in keys] == [("auc", True), ("start_time", False), ("model", False)]
    with pytest.raises(FilterSyntaxError, match="order-by"):
        parse_order_by(["metrics.auc DOWN"])


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["<", "<=", ">", ">=", "=", "!="]))
def test_any_number_round_trips(value: float, op: str) -> None:
    node = parse_filter(f"metrics.m {op} {value!r}")
    assert isinstance(node, Comparison)
    assert node.op == op and node.value == value


@given(st.text(alphabet=st.characters(blacklist_characters="'\\", blacklist_categories=("Cs",)), max_size=30))
def test_any_quoted_string_round_trips(text: str) -> None:
    assert parse_filter(f"params.p = '{text}'").value == text


@given(st.text(max_size=40))
def test_garbage_never_raises_anything_but_filter_errors(text: str) -> None:
    try:
        parse_filter(text)
    except FilterSyntaxError:
        pass


@pytest.mark.parametrize(("text", "words"), [
    (" or ".join(f"params.p = '{i}'" for i in range(51)), "at most 50 comparisons, this one has 51"),
    ("not " * 33 + "metrics.a > 1", "nests 33 levels deep, more than 32"),
    ("(" * 5000 + "metrics.a > 1" + ")" * 5000, "nests too deeply"),
    ("metrics.a > 1 and " * 2000 + "metrics.a > 1", "at most 20,000 characters"),
])
def test_a_filter_too_big_to_run_cheaply_is_refused_with_its_limit(text: str, words: str) -> None:
    """Every comparison is a query over the runs: a filter's size is bounded, with a message naming the bound."""
    with pytest.raises(FilterSyntaxError, match=re.escape(words)):
        parse_filter(text)
    assert parse_filter(" or ".join(f"params.p = '{i}'" for i in range(50))) is not None


def test_order_by_takes_at_most_ten_keys() -> None:
    assert len(parse_order_by([f"metrics.m{i}" for i in range(10)])) == 10
    with pytest.raises(FilterSyntaxError, match="at most 10 keys, not 11"):
        parse_order_by([f"metrics.m{i}" for i in range(11)])
