"""The search language of the metadata store: filters and order-by, parsed into a small tree.

Filters compare run fields with literals and combine them with ``and``, ``or``, ``not`` and
parentheses::

    metrics.auc > 0.8 and params.model = 'rf' and tags.team != 'x'
    (status = 'FAILED' or metrics.loss is null) and name like 'sweep-%'
    params.model in ('rf', 'gbm') and start_time >= '2026-01-01'

Fields are ``metrics.<key>``, ``params.<key>``, ``tags.<key>`` (quote a key holding spaces
with backticks or double quotes) and the run attributes listed in ``ATTRIBUTES``.
Every error names the position in the expression where it went wrong.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelcycle.errors import FilterSyntaxError

__all__ = [
    "ATTRIBUTES",
    "BoolOp",
    "Comparison",
    "Field",
    "Not",
    "OrderKey",
    "parse_filter",
    "parse_order_by",
]

# attribute name -> (column, kind); aliases map onto the same column
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "run_id": ("id", "str"),
    "id": ("id", "str"),
    "name": ("name", "str"),
    "run_name": ("name", "str"),
    "status": ("status", "str"),
    "start_time": ("start_time", "time"),
    "end_time": ("end_time", "time"),
    "parent_id": ("parent_id", "str"),
    "experiment": ("experiment", "str"),
    "git_commit": ("git_commit", "str"),
    "git_branch": ("git_branch", "str"),
    "reproduces": ("reproduces", "str"),
}
PREFIXES = {"metrics": "metric", "metric": "metric", "params": "param", "param": "param", "tags": "tag", "tag": "tag"}
COMPARE_OPS = {"=", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Field:
    kind: str  # metric | param | tag | attribute
    key: str  # metric/param/tag key, or the attribute's column
    value_kind: str  # num | str | time
    pos: int = 0

    def __str__(self) -> str:
        return self.key if self.kind == "attribute" else f"{self.kind}s.{self.key}"


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str  # = != < <= > >= like ilike "not like" "not ilike" in "not in" "is null" "is not null"
    value: Any = None


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool = False


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))
  | (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<bq>`[^`]*`)
  | (?P<op>!=|<>|<=|>=|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<dot>\.)
    """,
    re.VERBOSE,
)
_KEYCHARS = re.compile(r"[A-Za-z0-9_./\-]+")


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


class _Parser:
    def __init__(self, text: str, attributes: dict[str, tuple[str, str]] | None = None, prefixes: dict[str, str] | None = None):
        self.attributes = ATTRIBUTES if attributes is None else attributes
        self.prefixes = PREFIXES if prefixes is None else prefixes
        self.text = text
        self.toks: list[_Tok] = []
        self.i = 0
        self._lex()

    def error(self, message: str, pos: int | None = None) -> FilterSyntaxError:
        if pos is None:
            pos = self.peek().pos if self.i < len(self.toks) else len(self.text)
        return FilterSyntaxError(message, self.text, pos)

    def _lex(self) -> None:
        pos, text = 0, self.text
        while pos < len(text):
            # after "<prefix>." a key may contain dots, dashes and slashes
            if self.toks and self.toks[-1].kind == "dot" and len(self.toks) >= 2 \
                    and self.toks[-2].text.lower() in PREFIXES and text[pos] not in "`\"'":
                m = _KEYCHARS.match(text, pos)
                if m:
                    self.toks.append(_Tok("key", m.group(), pos))
                    pos = m.end()
                    continue
            m = _TOKEN.match(text, pos)
            if not m:
                raise FilterSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
            kind = m.lastgroup or ""
            if kind != "ws":
                self.toks.append(_Tok(kind, m.group(), pos))
            pos = m.end()

    def peek(self, offset: int = 0) -> _Tok:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else _Tok("end", "", len(self.text))

    def take(self) -> _Tok:
        tok = self.peek()
        self.i += 1
        return tok

    def word(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.lower() in words

    def expect_punct(self, ch: str) -> None:
        tok = self.take()
        if tok.text != ch:
            raise self.error(f"expected {ch!r} but found {tok.text or 'the end'!r}", tok.pos)

    # expr := and_expr ("or" and_expr)*
    def expr(self) -> Any:
        items = [self.and_expr()]
        while self.word("or"):
            self.take()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Any:
        items = [self.unary()]
        while self.word("and"):
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def unary(self) -> Any:
        if self.word("not"):
            self.take()
            return Not(self.unary())
        if self.peek().text == "(":
            self.take()
            node = self.expr()
            self.expect_punct(")")
            return node
        return self.comparison()

    def field(self) -> Field:
        tok = self.take()
        if tok.kind == "end":
            raise self.error("expected a field such as metrics.auc, but the expression ended", tok.pos)
        if tok.kind != "word":
            raise self.error(f"expected a field such as metrics.auc, params.model or status, found {tok.text!r}", tok.pos)
        name = tok.text.lower()
        if name == "attributes" and self.peek().kind == "dot":
            self.take()
            tok = self.take()
            name = tok.text.lower()
            if tok.kind != "word" or name not in self.attributes:
                raise self.error(self._unknown(tok.text), tok.pos)
        elif name in self.prefixes and self.peek().kind == "dot":
            self.take()
            key_tok = self.take()
            if key_tok.kind in ("key", "word"):
                key = key_tok.text
            elif key_tok.kind in ("bq", "str") and len(key_tok.text) >= 2:
                key = key_tok.text[1:-1]
            else:
                raise self.error(f"expected a key after '{tok.text}.'", key_tok.pos)
            if not key:
                raise self.error(f"empty key after '{tok.text}.'", key_tok.pos)
            kind = self.prefixes[name]
            return Field(kind, key, "num" if kind == "metric" else "str", tok.pos)
        if name not in self.attributes:
            raise self.error(self._unknown(tok.text), tok.pos)
        column, value_kind = self.attributes[name]
        return Field("attribute", column, value_kind, tok.pos)

    def literal(self, field: Field) -> Any:
        tok = self.take()
        if tok.kind == "num":
            number = float(tok.text)
            if field.value_kind == "str":
                return tok.text
            return number
        if tok.kind == "str":
            raw = tok.text[1:-1]
            value = raw.replace("''", "'") if tok.text[0] == "'" else raw
            value = re.sub(r"\\(.)", r"\1", value)
            if field.value_kind == "num":
                low = value.strip().lower()
                if low in ("nan", "inf", "+inf", "-inf", "infinity", "-infinity"):
                    return float(low.replace("infinity", "inf"))
                raise self.error(f"{field} is a number; compare it with a number, not {tok.text}", tok.pos)
            if field.value_kind == "time":
                return _parse_time(value, self, tok.pos)
            return value
        if tok.kind == "word" and tok.text.lower() in ("inf", "nan") and field.value_kind == "num":
            return float(tok.text.lower())
        if tok.kind == "word" and tok.text.lower() in ("true", "false") and field.value_kind == "str":
            return tok.text.lower()
        found = tok.text or "the end of the expression"
        raise self.error(f"expected a value to compare {field} with, found {found!r}; quote strings like 'rf'", tok.pos)

    def comparison(self) -> Comparison:
        field = self.field()
        tok = self.peek()
        if self.word("is"):
            self.take()
            negate = False
            if self.word("not"):
                self.take()
                negate = True
            if not self.word("null"):
                raise self.error("expected NULL after IS")
            self.take()
            return Comparison(field, "is not null" if negate else "is null")
        negate = False
        if self.word("not"):
            self.take()
            negate = True
        if self.word("in"):
            self.take()
            self.expect_punct("(")
            values = [self.literal(field)]
            while self.peek().text == ",":
                self.take()
                values.append(self.literal(field))
            self.expect_punct(")")
            return Comparison(field, "not in" if negate else "in", tuple(values))
        if self.word("like", "ilike"):
            op = self.take().text.lower()
            if field.value_kind != "str":
                raise self.error(f"{op.upper()} compares text, but {field} is a number", tok.pos)
            value = self.literal(field)
            return Comparison(field, f"not {op}" if negate else op, value)
        if negate:
            raise self.error("expected IN, LIKE or ILIKE after NOT")
        op_tok = self.take()
        if op_tok.kind != "op":
            found = op_tok.text or "the end of the expression"
            raise self.error(f"expected a comparison (=, !=, <, <=, >, >=, LIKE, IN, IS NULL) after {field}, found {found!r}", op_tok.pos)
        op = {"==": "=", "<>": "!="}.get(op_tok.text, op_tok.text)
        if field.value_kind == "str" and op in ("<", "<=", ">", ">=") and self.peek().kind == "num":
            number = self.peek().text
            why = "" if field.kind == "attribute" else " (params and tags are kept as text)"
            raise self.error(f"{field} is text{why}, so {op} would compare text, where "
                             f"'10' < '9'; to compare text anyway, quote it: {field} {op} '{number}'; to compare numbers, "
                             "log the value as a metric", self.peek().pos)
        value = self.literal(field)
        if isinstance(value, float) and math.isnan(value) and op not in ("=", "!="):
            raise self.error("NaN can only be compared with = or !=", op_tok.pos)
        return Comparison(field, op, value)


    def _unknown(self, name: str) -> str:
        prefixes = ", ".join(f"{p}.<key>" for p in sorted({p for p in self.prefixes if p.endswith("s")}))
        return f"unknown field {name!r}; use {prefixes} or one of {', '.join(sorted(set(self.attributes)))}"


def _parse_time(value: str, parser: _Parser, pos: int) -> float:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise parser.error(f"{value!r} is not a date; use ISO format such as '2026-01-31' or '2026-01-31T12:00'", pos) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_filter(text: str | None, attributes: dict[str, tuple[str, str]] | None = None, prefixes: dict[str, str] | None = None) -> Any:
    """Parse a filter expression into a tree of ``Comparison``, ``BoolOp`` and ``Not``.

    Returns None for an empty filter.

    Raises:
        FilterSyntaxError: naming the position of the problem.

    Example:
        >>> parse_filter("metrics.auc > 0.8").field.key
        'auc'
    """
    if text is None or not str(text).strip():
        return None
    if not isinstance(text, str):
        raise FilterSyntaxError(f"a filter must be a string, not {type(text).__name__}")
    if len(text) > MAX_FILTER_CHARS:
        raise FilterSyntaxError(f"a filter may be at most {MAX_FILTER_CHARS:,} characters long, this one has {len(text):,}")
    parser = _Parser(text, attributes, prefixes)
    try:
        node = parser.expr()
    except RecursionError:
        raise FilterSyntaxError("the filter nests too deeply; write it with fewer parentheses and 'not's") from None
    count, depth = _comparisons(node)
    if depth > MAX_DEPTH:
        raise FilterSyntaxError(f"the filter nests {depth} levels deep, more than {MAX_DEPTH}; write it with fewer parentheses and 'not's")
    if count > MAX_COMPARISONS:
        raise FilterSyntaxError(f"a filter may hold at most {MAX_COMPARISONS} comparisons, this one has {count} (each is a query "
                                "of its own over every run); narrow it with fewer conditions, or an 'in (…)' list")
    tok = parser.peek()
    if tok.kind != "end":
        hint = " (combine conditions with 'and' or 'or')" if tok.kind in ("word", "key") else ""
        raise parser.error(f"unexpected {tok.text!r}{hint}", tok.pos)
    return node


MAX_FILTER_CHARS = 20_000
MAX_COMPARISONS = 50
MAX_DEPTH = 32
MAX_ORDER_KEYS = 10


def _comparisons(node: Any) -> tuple[int, int]:
    """How many comparisons a parsed filter holds, and how deep it nests."""
    if isinstance(node, BoolOp):
        parts = [_comparisons(x) for x in node.items]
        return sum(c for c, _ in parts), 1 + max(d for _, d in parts)
    if isinstance(node, Not):
        count, depth = _comparisons(node.item)
        return count, depth + 1
    return 1, 0


def parse_order_by(items: list[str] | tuple[str, ...] | str | None) -> list[OrderKey]:
    """Parse order-by clauses such as ``["metrics.auc DESC", "start_time"]``.

    Example:
        >>> parse_order_by(["metrics.auc DESC"])[0].descending
        True
    """
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    if len(items) > MAX_ORDER_KEYS:
        raise FilterSyntaxError(f"order by at most {MAX_ORDER_KEYS} keys, not {len(items)}")
    keys = []
    for item in items:
        parser = _Parser(item)
        field = parser.field()
        descending = False
        if parser.word("desc", "asc"):
            descending = parser.take().text.lower() == "desc"
        tok = parser.peek()
        if tok.kind != "end":
            raise parser.error(f"unexpected {tok.text!r} in order-by; write e.g. 'metrics.auc DESC'", tok.pos)
        keys.append(OrderKey(field, descending))
    return keys
