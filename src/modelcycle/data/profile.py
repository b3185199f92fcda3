"""Mergeable dataset profiles: one pass over the data, sketches instead of raw values.

A profile holds, per column: counts (values, missing, infinite), moments (mean, variance), min
and max, a KLL quantile sketch, an HLL distinct-count sketch, and exact value counts while a
column has few distinct values (a frequent-items sketch once it has many text values).
Profiles of partitions merge into the profile of their union, within the sketches' error.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelcycle.errors import InvalidInputError

__all__ = [
    "EXACT_LIMIT", "EXACT_LIMIT_TEXT", "HASH_BUCKETS", "MAX_PROFILE_BYTES", "ColumnProfile", "Profile", "iter_batches",
    "profile", "total_rows",
]

EXACT_LIMIT = 1000  # distinct numbers counted exactly per column
# Distinct text values counted exactly per column: drift and unseen-value verdicts are exact up to here.
EXACT_LIMIT_TEXT = 10_000
# Text values are also counted per bucket of their hash, a fixed-size table that merges exactly:
# beyond EXACT_LIMIT_TEXT, drift of a text column is tested on these counts.
HASH_BUCKETS = 128
KLL_K = 1000  # KLL accuracy: ~0.3% rank error; smaller k made drift scores too noisy to trust near thresholds
HLL_LG_K = 12
# A profile read from bytes expands to at most this much JSON: about 30 KB a column, so some 4,000 columns.
MAX_PROFILE_BYTES = 128 << 20
# Distinct counts of wide columns come from an HLL over the values whose hash falls in 1/32 of
# the hash space (a fixed rule, so partitions merge): 32x fewer sketch updates for about 2% more
# error at a million distinct values. Up to EXACT_LIMIT distinct values are counted exactly.
SAMPLE_BITS = 5
_FREQ_LG_MAX = 10
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

NUMERIC_BASES = ("numeric", "integer", "boolean", "datetime")
_ISO_DATE = r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"


def _sketches() -> Any:
    try:
        import datasketches
    except ImportError:  # pragma: no cover - a core dependency
        raise InvalidInputError("profiles need Apache DataSketches: pip install datasketches") from None
    return datasketches


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Distinct values, sorted (np.unique's hash path is several times slower on many repeats)."""
    if values.size < 2:
        return values
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def _hash(values: np.ndarray) -> np.ndarray:
    """A cheap, deterministic 64-bit hash per value (equal values, equal hashes)."""
    if values.dtype.kind in "fiub" and values.dtype.itemsize == 8:
        raw = values.view(np.uint64)
    elif values.dtype.kind in "fiubmM":
        raw = values.astype(np.float64).view(np.uint64) if values.dtype.kind == "f" else values.astype(np.int64).view(np.uint64)
    else:
        import pandas as pd

        return pd.util.hash_array(values.astype(object), categorize=False)
    with np.errstate(over="ignore"):  # splitmix64's finaliser: every input bit reaches every output bit
        h = (raw ^ (raw >> np.uint64(30))) * _M1
        h = (h ^ (h >> np.uint64(27))) * _M2
        return h ^ (h >> np.uint64(31))


@dataclass
class ColumnProfile:
    """What one column looks like, as mergeable state plus the statistics derived from it.

    Example:
        >>> import pandas as pd
        >>> col = profile(pd.DataFrame({"x": [1.0, 2.0, None]})).columns["x"]
        >>> col.kind, col.count, col.missing, col.mean
        ('numeric', 2, 1, 1.5)
    """

    name: str
    base: str  # numeric | integer | boolean | datetime | categorical | string
    dtype: str
    count: int = 0
    missing: int = 0
    infinite: int = 0
    mean: float = math.nan
    m2: float = 0.0
    min: Any = None
    max: Any = None
    exact: dict[Any, int] | None = field(default_factory=dict)  # None once over the exact limit of distinct values
    mixed_types: bool = False
    hashed: list[int] | None = None  # text columns: counts per hash bucket (None in profiles written before them)
    _kll: Any = None
    _hll: Any = None
    _freq: Any = None

    # --- derived statistics ------------------------------------------------------------
    @property
    def kind(self) -> str:
        """Inferred type: numeric, integer, boolean, categorical, text or datetime."""
        if self.base != "string":
            return self.base
        if self.exact is not None and self.count and len(self.exact) <= max(20, self.count // 2):
            return "categorical"
        return "text"

    @property
    def std(self) -> float:
        n = self.count - self.infinite
        return math.sqrt(self.m2 / (n - 1)) if n > 1 else math.nan

    @property
    def exact_limit(self) -> int:
        """How many distinct values this column counts exactly (more for text than for numbers)."""
        return EXACT_LIMIT_TEXT if self.base == "string" else EXACT_LIMIT

    @property
    def distinct(self) -> int:
        """Exact while the column has at most ``exact_limit`` distinct values, estimated beyond."""
        if self.exact is not None:
            return len(self.exact)
        if self._hll is None:
            return 0
        estimate = max(self.exact_limit + 1, round(self._hll.get_estimate() * (1 << SAMPLE_BITS)))
        return min(estimate, max(self.count - self.infinite, self.exact_limit + 1))

    def quantiles(self, levels: Iterable[float]) -> list[float]:
        """Values at the given ranks (0..1), from the KLL sketch; empty when the column is not numeric."""
        levels = list(levels)
        if self._kll is None or self._kll.is_empty():
            return [math.nan] * len(levels)
        return [float(v) for v in self._kll.get_quantiles(levels)]

    def cdf(self, points: Iterable[float], inclusive: bool = True) -> list[float]:
        """Share of values at or below each point (below it, with ``inclusive=False``), for numeric columns."""
        points = sorted(points)
        if self._kll is None or self._kll.is_empty():
            return [math.nan] * len(points)
        return [float(v) for v in self._kll.get_cdf(points, inclusive)][: len(points)]

    def histogram(self, edges: Sequence[float]) -> list[float]:
        """The share of values in each bin split at ``edges`` (increasing): below the first edge,
        from each edge up to the next, from the last edge up. The shares sum to 1; NaN when the
        column is not numeric.

        Example:
            >>> import pandas as pd
            >>> profile(pd.DataFrame({"x": [0, 0, 1, 1]})).columns["x"].histogram([0.5])
            [0.5, 0.5]
        """
        below = self.cdf(edges, inclusive=False)
        if any(math.isnan(v) for v in below):
            return [math.nan] * (len(edges) + 1)
        return np.clip(np.diff([0.0, *below, 1.0]), 0.0, None).tolist()

    def frequent_values(self, top: int = 10) -> list[tuple[Any, int]]:
        """The most frequent values with their counts (exact, or estimates from the sketch)."""
        if self.exact is not None:
            return sorted(self.exact.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]
        if self._freq is None:
            return []
        ds = _sketches()
        items = self._freq.get_frequent_items(ds.frequent_items_error_type.NO_FALSE_NEGATIVES)
        return [(item, int(estimate)) for item, estimate, _, _ in items[:top]]

    # --- building ----------------------------------------------------------------------
    def _ensure_sketches(self) -> None:
        ds = _sketches()
        if self._hll is None:
            self._hll = ds.hll_sketch(HLL_LG_K)
        if self._kll is None and self.base in NUMERIC_BASES:
            self._kll = ds.kll_doubles_sketch(KLL_K)

    def _update_distinct(self, hashes: np.ndarray) -> None:
        sampled = _sorted_unique(hashes[(hashes & np.uint64((1 << SAMPLE_BITS) - 1)) == 0])
        update = self._hll.update
        for h in sampled.view(np.int64).tolist():  # int64: the binding takes these without a slow fallback
            update(h)

    def _add_exact(self, values: Iterable[Any], counts: Iterable[int]) -> None:
        if self.exact is None:
            return
        exact = self.exact
        for value, n in zip(values, counts, strict=True):
            exact[value] = exact.get(value, 0) + int(n)
        if len(exact) > self.exact_limit:
            self._overflow()

    def _overflow(self) -> None:
        """Too many distinct values to count exactly: keep the top ones in a frequent-items sketch."""
        if self.base == "string" and self.exact is not None:
            ds = _sketches()
            self._freq = self._freq or ds.frequent_strings_sketch(_FREQ_LG_MAX)
            for value, n in self.exact.items():
                self._freq.update(str(value), int(n))
        self.exact = None

    def update_numeric(self, values: np.ndarray, missing: int) -> None:
        """Add a batch of numbers (float64; NaN already removed and counted in ``missing``)."""
        self._ensure_sketches()
        self.missing += missing
        n_all = int(values.size)
        if n_all == 0:
            return
        finite = np.isfinite(values)
        n_inf = n_all - int(finite.sum())
        if n_inf:
            self.infinite += n_inf
            values = values[finite]
        self.count += n_all
        n = int(values.size)
        if n == 0:
            return
        # Sorted once: KLL takes sorted input ~2.5x faster, and min, max and low-cardinality
        # value counts come from it for free.
        ordered = np.sort(values)
        with np.errstate(over="ignore", invalid="ignore"):  # numbers near the double's limit: an infinite spread, said later
            mean = float(values.mean())
            m2 = float(((values - mean) ** 2).sum())
        self._combine_moments(n, mean, m2)
        lo, hi = float(ordered[0]), float(ordered[-1])
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)
        self._kll.update(ordered)
        self._update_distinct(_hash(ordered))
        if self.exact is not None:
            if np.unique(values[: 4 * EXACT_LIMIT]).size > EXACT_LIMIT:  # plainly too many distinct values
                self._overflow()
                return
            starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            if starts.size > EXACT_LIMIT:
                self._overflow()
                return
            counts = np.diff(np.r_[starts, n])
            cast = {"boolean": bool, "integer": int, "datetime": int}.get(self.base, float)
            self._add_exact([cast(u) for u in ordered[starts].tolist()], counts.tolist())

    def update_strings(self, values: Any, missing: int) -> None:
        """Add a batch of text or category values (a pandas Series without missing values)."""
        self._ensure_sketches()
        self.missing += missing
        n = len(values)
        if n == 0:
            return
        self.count += n
        counts = values.value_counts(sort=False)
        counts = counts[counts > 0]
        keys = counts.index.to_numpy(dtype=object)
        hashes = _hash(keys)
        self._update_distinct(hashes)
        self._add_hashed(hashes, counts.to_numpy())
        if self.exact is not None:
            self._add_exact(keys.tolist(), counts.to_numpy().tolist())
        else:
            top = counts.nlargest(4 << _FREQ_LG_MAX)
            for value, c in zip(top.index.tolist(), top.to_numpy().tolist(), strict=True):
                self._freq.update(str(value), int(c))

    def _add_hashed(self, hashes: np.ndarray, counts: np.ndarray) -> None:
        if self.hashed is None:
            if self.count > int(np.sum(counts)):
                return  # values counted by a profile written before hash counts: they cannot be completed
            self.hashed = [0] * HASH_BUCKETS
        buckets = np.bincount((hashes % np.uint64(HASH_BUCKETS)).astype(np.int64), weights=counts, minlength=HASH_BUCKETS)
        self.hashed = (np.asarray(self.hashed, dtype=np.int64) + buckets.astype(np.int64)).tolist()

    def _combine_moments(self, n: int, mean: float, m2: float) -> None:
        n0 = self.count - self.infinite - n  # values with moments already folded in
        if n0 <= 0 or math.isnan(self.mean):
            self.mean, self.m2 = mean, m2
            return
        total = n0 + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * n0 * n / total

    # --- merging and serialising -------------------------------------------------------
    def merged(self, other: ColumnProfile) -> ColumnProfile:
        """The profile of both partitions together (neither input is changed)."""
        if self.name != other.name:
            raise InvalidInputError(f"cannot merge column {self.name!r} with column {other.name!r}")
        if self.base != other.base:
            raise InvalidInputError(
                f"column {self.name!r} is {self.base} in one profile and {other.base} in the other; "
                "cast it to one type before profiling"
            )
        out = ColumnProfile.from_dict(self.to_dict())
        out.missing += other.missing
        out.infinite += other.infinite
        n_self = self.count - self.infinite
        n_other = other.count - other.infinite
        out.count += other.count
        if n_other:
            if n_self:
                total = n_self + n_other
                delta = other.mean - self.mean
                out.mean = self.mean + delta * n_other / total
                out.m2 = self.m2 + other.m2 + delta * delta * n_self * n_other / total
            else:
                out.mean, out.m2 = other.mean, other.m2
        out.min = other.min if out.min is None else (out.min if other.min is None else min(out.min, other.min))
        out.max = other.max if out.max is None else (out.max if other.max is None else max(out.max, other.max))
        out.mixed_types = self.mixed_types or other.mixed_types
        if self.hashed is not None and other.hashed is not None:
            out.hashed = (np.asarray(self.hashed, dtype=np.int64) + np.asarray(other.hashed, dtype=np.int64)).tolist()
        elif not self.count:
            out.hashed = None if other.hashed is None else list(other.hashed)
        elif other.count:  # one side was written before hash counts
            out.hashed = None
        ds = _sketches()
        out._ensure_sketches()
        if other._hll is not None:
            union = ds.hll_union(HLL_LG_K)
            union.update(out._hll)
            union.update(other._hll)
            out._hll = union.get_result()
        if other._kll is not None and out._kll is not None:
            out._kll.merge(other._kll)
        if out.exact is not None and other.exact is not None:
            out._add_exact(list(other.exact), list(other.exact.values()))
        else:
            if out.exact is not None:
                out._overflow()
            if self.base == "string":
                out._freq = out._freq or ds.frequent_strings_sketch(_FREQ_LG_MAX)
                if other.exact is not None:
                    for value, n in other.exact.items():
                        out._freq.update(str(value), int(n))
                elif other._freq is not None:
                    out._freq.merge(other._freq)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state, sketches as base64."""

        def b64(sketch: Any, compact: bool = False) -> str | None:
            if sketch is None:
                return None
            raw = sketch.serialize_compact() if compact else sketch.serialize()
            return base64.b64encode(raw).decode()

        return {
            "name": self.name, "base": self.base, "dtype": self.dtype, "count": self.count,
            "missing": self.missing, "infinite": self.infinite,
            "mean": None if math.isnan(self.mean) else self.mean, "m2": self.m2, "min": self.min, "max": self.max,
            "exact": None if self.exact is None else [[k, v] for k, v in self.exact.items()],
            "mixed_types": self.mixed_types, "hashed": self.hashed,
            "kll": b64(self._kll), "hll": b64(self._hll, compact=True), "freq": b64(self._freq),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnProfile:
        """A column from :meth:`to_dict`'s form, every field and sketch checked before it is used.

        Sketch bytes are checked against their format (levels, capacities, counts, lengths) before
        the sketch library reads them: a damaged or crafted profile is refused, never dereferenced.
        """
        ds = _sketches()
        count, missing, infinite = _whole(d, "count"), _whole(d, "missing"), _whole(d, "infinite", 0)
        base = d["base"]
        if base not in (*NUMERIC_BASES, "string") or infinite > count:
            raise InvalidInputError(f"column {d.get('name')!r}: base {base!r} or its counts are not a profile's")
        for key in ("mean", "m2"):
            if d[key] is not None and (not isinstance(d[key], (int, float)) or isinstance(d[key], bool)):
                raise InvalidInputError(f"column {d.get('name')!r}: {key} must be a number")
        if base in NUMERIC_BASES:
            for key in ("min", "max"):
                if d[key] is not None and (not isinstance(d[key], (int, float)) or (isinstance(d[key], bool) and base != "boolean")):
                    raise InvalidInputError(f"column {d.get('name')!r}: {key} must be a number")
        kll = d.get("kll")
        if (kll is None) != (base not in NUMERIC_BASES):
            raise InvalidInputError(f"column {d.get('name')!r}: a {base} column {'needs' if kll is None else 'has no'} quantile sketch")

        def load(kind: Any, text: str | None, check: Any = None) -> Any:
            if text is None:
                return None
            raw = base64.b64decode(text, validate=True)
            if check is not None:
                check(raw)
            return kind.deserialize(raw)

        return cls(
            name=str(d["name"]), base=base, dtype=str(d["dtype"]), count=count, missing=missing,
            infinite=infinite, mean=math.nan if d["mean"] is None else float(d["mean"]), m2=float(d["m2"]),
            min=d["min"], max=d["max"],
            exact=None if d["exact"] is None else {k: _whole({"n": v}, "n") for k, v in d["exact"]},
            mixed_types=bool(d.get("mixed_types", False)), hashed=_hash_counts(d.get("hashed")),
            _kll=load(ds.kll_doubles_sketch, kll, lambda raw: _check_kll(raw, count - infinite)),
            _hll=load(ds.hll_sketch, d.get("hll"), _check_hll),
            _freq=load(ds.frequent_strings_sketch, d.get("freq")),
        )

    def summary(self) -> dict[str, Any]:
        """The derived statistics, for people and reports."""
        out: dict[str, Any] = {
            "type": self.kind, "count": self.count, "missing": self.missing, "distinct": self.distinct,
        }
        if self.base in NUMERIC_BASES:
            q = self.quantiles([0.05, 0.25, 0.5, 0.75, 0.95])
            out.update({"min": self.min, "max": self.max, "mean": None if math.isnan(self.mean) else self.mean,
                        "std": None if math.isnan(self.std) else self.std, "infinite": self.infinite,
                        "quantiles": dict(zip(("p05", "p25", "p50", "p75", "p95"), q, strict=True))})
        out["frequent"] = [[v, n] for v, n in self.frequent_values(10)]
        return out


@dataclass
class Profile:
    """Per-column profiles of a dataset, mergeable across partitions and serialisable.

    Example:
        >>> import pandas as pd
        >>> a = profile(pd.DataFrame({"x": [1.0, 2.0]}))
        >>> b = profile(pd.DataFrame({"x": [3.0, 4.0]}))
        >>> merged = a.merge(b)
        >>> merged.rows, merged.columns["x"].mean
        (4, 2.5)
        >>> Profile.from_bytes(merged.to_bytes()).columns["x"].max
        4.0
    """

    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    rows: int = 0

    def merge(self, other: Profile) -> Profile:
        """The profile of both datasets together. Columns only one side has are kept as they are."""
        out = Profile(rows=self.rows + other.rows)
        for name in [*self.columns, *(c for c in other.columns if c not in self.columns)]:
            a, b = self.columns.get(name), other.columns.get(name)
            if a is not None and b is not None:
                out.columns[name] = a.merged(b)
            else:
                only = a or b
                assert only is not None
                out.columns[name] = ColumnProfile.from_dict(only.to_dict())
        return out

    @staticmethod
    def merge_all(profiles: Iterable[Profile]) -> Profile:
        """Merge many profiles (of partitions, windows or files) into one."""
        result: Profile | None = None
        for p in profiles:
            result = p if result is None else result.merge(p)
        if result is None:
            raise InvalidInputError("merge_all needs at least one profile")
        return result

    def to_dict(self) -> dict[str, Any]:
        return {"format": 1, "rows": self.rows, "columns": [c.to_dict() for c in self.columns.values()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Profile:
        if d.get("format") != 1:
            raise InvalidInputError(f"unknown profile format {d.get('format')!r}; this modelcycle reads format 1")
        cols = [ColumnProfile.from_dict(c) for c in d["columns"]]
        return cls(columns={c.name: c for c in cols}, rows=_whole(d, "rows"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_json_default)

    def to_bytes(self, level: int = 6) -> bytes:
        """Compact bytes (zlib-compressed JSON, no pickle): safe to store and to load anywhere."""
        return zlib.compress(self.to_json().encode(), level)

    @classmethod
    def from_bytes(cls, data: bytes, limit: int = MAX_PROFILE_BYTES) -> Profile:
        """Read bytes written by :meth:`to_bytes`; decompression stops at ``limit`` bytes (a compression bomb is refused).

        Raises:
            InvalidInputError: not a profile, or it would expand beyond ``limit``.
        """
        try:
            inflater = zlib.decompressobj()
            text = inflater.decompress(data, limit)
            bomb = bool(inflater.unconsumed_tail)
        except zlib.error as e:
            raise InvalidInputError(f"these bytes are not a modelcycle profile: {e}") from None
        if bomb:
            raise InvalidInputError(f"this profile expands to more than {limit:,} bytes; refusing to read it "
                                    "(profiles are a few MB at most: the bytes are damaged or crafted)")
        try:
            return cls.from_dict(json.loads(text))
        except (zlib.error, ValueError, KeyError, TypeError, AttributeError, RecursionError, IndexError, RuntimeError,
                OverflowError, MemoryError) as e:
            if isinstance(e, InvalidInputError):
                raise
            raise InvalidInputError(f"these bytes are not a modelcycle profile: {type(e).__name__}: {str(e)[:200]}") from None

    def to_html(self, path: str | None = None) -> str:
        """A page with each column's statistics and distribution."""
        from modelcycle.data.report import profile_html, write

        return write(profile_html(self), path)

    def summary(self) -> dict[str, Any]:
        """Per-column statistics for people and reports."""
        return {"rows": self.rows, "columns": {name: c.summary() for name, c in self.columns.items()}}


def _whole(d: Mapping[str, Any], key: str, default: Any = None) -> int:
    value = d.get(key, default)
    if type(value) is not int or not 0 <= value < 1 << 62:
        raise InvalidInputError(f"a profile's {key} must be a whole number ≥ 0, not {value!r}")
    return value


def _kll_capacity(k: int, m: int, levels: int) -> int:
    """Items a KLL sketch of ``levels`` levels holds (the library's own formula)."""

    def aux(k: int, depth: int) -> int:
        return (((k << 1) << depth) // 3**depth + 1) >> 1

    def cap(depth: int) -> int:
        if depth <= 30:
            return aux(k, depth)
        half = depth // 2
        return aux(aux(k, half), depth - half)

    return sum(max(m, cap(levels - h - 1)) for h in range(levels))


def _check_kll(raw: bytes, values: int) -> None:
    """Refuse KLL bytes whose structure does not add up: the library would read them out of bounds."""
    import struct

    bad = InvalidInputError("a profile's quantile sketch is damaged or crafted; refusing to read it")
    if len(raw) < 8 or raw[2] != 15:
        raise bad
    k, m = struct.unpack_from("<HB", raw, 4)
    if k != KLL_K or not 2 <= m <= 8:
        raise bad
    if raw[0] == 2:  # empty, or a single value
        if not ((len(raw) == 8 and values == 0) or (len(raw) == 16 and values == 1 and math.isfinite(struct.unpack_from("<d", raw, 8)[0]))):
            raise bad
        return
    if raw[0] != 5 or len(raw) < 20:
        raise bad
    n, _, levels = struct.unpack_from("<QHB", raw, 8)
    if not 1 <= levels <= 60 or len(raw) < 36 + 4 * levels or (len(raw) - 36 - 4 * levels) % 8:
        raise bad
    bounds = list(struct.unpack_from(f"<{levels}I", raw, 20))
    items = (len(raw) - 36 - 4 * levels) // 8
    capacity = bounds[0] + items
    if capacity != _kll_capacity(k, m, levels) or n != values:
        raise bad
    bounds.append(capacity)
    if any(b > a for a, b in zip(bounds[1:], bounds, strict=False)):
        raise bad
    if sum((bounds[h + 1] - bounds[h]) << h for h in range(levels)) != n:
        raise bad
    body = np.frombuffer(raw, dtype="<f8", offset=20 + 4 * levels)
    if not np.isfinite(body).all() or (items and not (body[0] <= body[2:].min() and body[2:].max() <= body[1])):
        raise bad


def _check_hll(raw: bytes) -> None:
    """Refuse HLL bytes that are not a compact sketch of the profiles' size, of the right length for its mode."""
    import struct

    bad = InvalidInputError("a profile's distinct-count sketch is damaged or crafted; refusing to read it")
    if len(raw) < 8 or raw[1] != 1 or raw[2] != 7 or raw[3] != HLL_LG_K or (raw[7] >> 2) & 0b11 == 0b11:
        raise bad
    mode, target = raw[7] & 0b11, (raw[7] >> 2) & 0b11
    if mode == 0:
        expected = 8 + 4 * raw[6]
    elif mode == 1 and len(raw) >= 12:
        expected = 12 + 4 * struct.unpack_from("<I", raw, 8)[0]
    elif mode == 2 and len(raw) >= 40:
        slots = 1 << HLL_LG_K
        aux = struct.unpack_from("<I", raw, 36)[0] if target == 0 else 0
        expected = 40 + (slots // 2 + 4 * aux, (slots * 3 + 3) // 4, slots)[target]
    else:
        raise bad
    if raw[0] != (2, 3, 10)[mode] or len(raw) != expected:
        raise bad


def _hash_counts(value: Any) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != HASH_BUCKETS or not all(type(v) is int and 0 <= v < 1 << 62 for v in value):
        raise InvalidInputError(f"a profile's hash counts must be {HASH_BUCKETS} non-negative integers")
    return value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def _base_of(series: Any) -> tuple[str, bool]:
    import pandas as pd
    from pandas.api import types as t

    dtype = series.dtype
    if t.is_bool_dtype(dtype):
        return "boolean", False
    if t.is_integer_dtype(dtype):
        return "integer", False
    if t.is_float_dtype(dtype):
        return "numeric", False
    if t.is_datetime64_any_dtype(dtype):
        return "datetime", False
    if isinstance(dtype, pd.CategoricalDtype):
        return "string", False
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric", False
    if inferred == "boolean":
        return "boolean", False
    if inferred in ("datetime", "datetime64", "date"):
        return "datetime", False
    if inferred == "string":
        sample = series.dropna().head(1000)
        if len(sample) and bool(sample.str.fullmatch(_ISO_DATE).all()):  # dates read from a CSV file are dates
            return "datetime", False
    return "string", inferred not in ("string", "empty", "categorical", "bytes")


def _update(col: ColumnProfile, series: Any) -> None:
    import pandas as pd

    mask = series.isna().to_numpy()
    missing = int(mask.sum())
    present = series[~mask] if missing else series
    if col.base in NUMERIC_BASES:
        if col.base == "datetime":  # nanoseconds since the epoch, whatever unit the column was stored in
            stamps = pd.to_datetime(present, utc=True, format="ISO8601", errors="coerce") if present.dtype == object \
                or pd.api.types.is_string_dtype(present.dtype) else pd.to_datetime(present, utc=True)
            stamps = stamps.astype("datetime64[ns, UTC]")
            bad = stamps.isna().to_numpy()
            if bad.any():
                missing += int(bad.sum())
                stamps = stamps[~bad]
            values = stamps.astype("int64").to_numpy(dtype=np.float64)
        else:
            values = pd.to_numeric(present, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.isnan(values)
            if bad.any():  # text in a numeric column counts as missing here; validation reports it
                missing += int(bad.sum())
                values = values[~bad]
        col.update_numeric(values, missing)
    else:
        if not isinstance(present.dtype, pd.CategoricalDtype) and present.dtype != object:
            present = present.astype(object)
        if isinstance(present.dtype, pd.CategoricalDtype) and not pd.api.types.is_string_dtype(present.cat.categories):
            present = present.astype(object)
        if col.mixed_types or (len(present) and not isinstance(present.iloc[0], str) and present.dtype == object):
            present = present.map(lambda v: v if isinstance(v, str) else str(v))
        col.update_strings(present, missing)


def iter_batches(data: Any, batch_rows: int) -> Iterator[Any]:
    """pandas DataFrames of at most ``batch_rows`` rows from any supported input."""
    import os

    import pandas as pd

    if isinstance(data, (str, os.PathLike)):
        name, suffix, source = _file(data)
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            with source() as f:
                try:
                    # pre_buffer keeps every row group it has read cached until the file is closed:
                    # memory would grow with the file instead of staying at a batch or two.
                    reader = pq.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)
                except Exception as e:
                    raise InvalidInputError(f"{name} is not a readable Parquet file: {e}") from None
                for batch in reader.iter_batches(batch_size=batch_rows):
                    yield batch.to_pandas()
            return
        if suffix in (".csv", ".tsv", ".txt"):
            with source() as f:
                try:
                    yield from pd.read_csv(f, sep="\t" if suffix == ".tsv" else ",", chunksize=batch_rows)
                except (pd.errors.ParserError, UnicodeDecodeError) as e:
                    raise InvalidInputError(f"{name} is not a readable CSV file: {e}") from None
            return
        raise InvalidInputError(f"{name}: profiles read .csv, .tsv and .parquet files")
    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):  # pyarrow.Table, polars.DataFrame
        data = data.to_pandas()
    if isinstance(data, pd.Series):
        data = data.to_frame()
    if not isinstance(data, pd.DataFrame):
        raise InvalidInputError(
            f"cannot profile a {type(data).__name__}; give a DataFrame, an Arrow table or a CSV/Parquet path"
        )
    if data.columns.duplicated().any():
        dupes = sorted({str(c) for c in data.columns[data.columns.duplicated()]})
        raise InvalidInputError(f"duplicate column names: {', '.join(dupes)}; rename them before profiling")
    for start in range(0, max(len(data), 1), batch_rows):
        yield data.iloc[start:start + batch_rows]


def _file(data: Any) -> tuple[str, str, Any]:
    """A file given by a local path or an object-store URL (``s3://bucket/key.parquet``): its name, its suffix
    and a function opening it for reading.

    Raises:
        InvalidInputError: no such file.
    """
    import os

    text = os.fspath(data)
    if "://" in text and not text.startswith("file://"):
        import fsspec

        try:
            fs, path = fsspec.core.url_to_fs(text)
            found = fs.isfile(path)
        except (ImportError, ValueError) as e:
            raise InvalidInputError(f"cannot read {text!r}: {e}; install the fsspec driver for this scheme (s3fs for s3://)") from None
        except OSError as e:
            raise InvalidInputError(f"cannot reach {text!r}: {e}") from None
        if not found:
            raise InvalidInputError(f"{text!r} is not a file")
        name = path.rsplit("/", 1)[-1]
        return name, os.path.splitext(name)[1].lower(), lambda: fs.open(path, "rb")
    from pathlib import Path

    path = Path(text.removeprefix("file://"))
    if not path.is_file():
        raise InvalidInputError(f"{str(path)!r} is not a file")
    return path.name, path.suffix.lower(), lambda: open(path, "rb")


def total_rows(data: Any) -> int | None:
    """How many rows ``data`` has, when that is known without reading it (None for CSV files)."""
    import os

    if isinstance(data, (str, os.PathLike)):
        try:
            _, suffix, source = _file(data)
            if suffix in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                with source() as f:
                    return int(pq.ParquetFile(f).metadata.num_rows)
        except Exception:
            return None
        return None
    try:
        return len(data)
    except TypeError:
        return None


def _is_dask(data: Any) -> bool:
    return type(data).__module__.split(".", 1)[0] in ("dask", "dask_expr") and hasattr(data, "to_delayed")


def _profile_bytes(part: Any) -> bytes:
    return profile(part).to_bytes()


def _profile_dask(frame: Any) -> Profile:
    """Map-reduce: every partition is profiled where it lives (on the active Dask scheduler), then merged."""
    import dask

    parts = frame.to_delayed()
    blobs = dask.compute(*[dask.delayed(_profile_bytes)(part) for part in parts])
    return Profile.merge_all(Profile.from_bytes(b) for b in blobs)


def profile(data: Any, batch_rows: int = 500_000, progress: Any = None) -> Profile:
    """Profile a DataFrame, Arrow table, polars frame, Dask DataFrame, or CSV/Parquet file in one pass.

    A Dask DataFrame is profiled partition by partition on the workers of the active Dask
    scheduler (a ``distributed.Client``, or Dask's default), and the partition profiles merged.

    Files are read in batches of ``batch_rows`` rows, so memory stays bounded; ``progress``,
    when given, is called with the number of rows read after each batch.

    Raises:
        InvalidInputError: the input cannot be profiled (unknown type, duplicate columns, bad file).

    Example:
        >>> import pandas as pd
        >>> p = profile(pd.DataFrame({"city": ["a", "b", "a"], "n": [1, 2, 3]}))
        >>> p.columns["city"].frequent_values(1), p.columns["n"].kind
        ([('a', 2)], 'integer')
    """
    if _is_dask(data):
        return _profile_dask(data)
    result = Profile()
    for batch in iter_batches(data, batch_rows):
        result.rows += len(batch)
        if progress is not None:
            progress(result.rows)
        names = [str(n) for n in batch.columns]
        if len(set(names)) != len(names):
            clash = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInputError(f"several columns are named {', '.join(map(repr, clash))} once written as text "
                                    "(e.g. 1 and '1'); rename them before profiling")
        for name, series in batch.items():
            key = str(name)
            col = result.columns.get(key)
            if col is None:
                base, mixed = _base_of(series)
                col = result.columns[key] = ColumnProfile(key, base, str(series.dtype), mixed_types=mixed)
            _update(col, series)
    return result
