"""Five-field cron schedules (minute hour day-of-month month day-of-week), in UTC.

Example:
    >>> from datetime import datetime, timezone
    >>> c = Cron("0 3 * * *")
    >>> c.matches(datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)), c.matches(datetime(2026, 11, 27, 3, 1, tzinfo=timezone.utc))
    (True, False)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["Cron"]

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_NAMES = {3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
          4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]}


def _value(text: str, i: int) -> int:
    names = _NAMES.get(i)
    if names and text.lower() in names:
        return names.index(text.lower()) + (1 if i == 3 else 0)
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number in the {_FIELDS[i][0]} field")
    value = int(text)
    return 0 if i == 4 and value == 7 else value  # Sunday is 0 or 7


def _field(text: str, i: int) -> frozenset[int]:
    name, lo, hi = _FIELDS[i]
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"step {step_text!r} in the {name} field must be a whole number of at least 1")
            step = int(step_text)
        if part == "*":
            start, end = lo, hi
        elif "-" in part:
            a, _, b = part.partition("-")
            start, end = _value(a, i), _value(b, i)
        else:
            start = _value(part, i)
            end = hi if step > 1 else start
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise ValueError(f"{part!r} is outside {lo}-{hi} in the {name} field")
        out.update(range(start, end + 1, step))
    return frozenset(out)


class Cron:
    """A cron schedule; ``latest(after, until)`` is the last minute it fires in ``(after, until]``."""

    def __init__(self, text: str):
        parts = text.split()
        if len(parts) != 5:
            raise ValueError("a schedule has five fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\"")
        self.text = text
        self.fields = [_field(p, i) for i, p in enumerate(parts)]
        self._any_day = (parts[2] == "*", parts[4] == "*")

    def matches(self, at: datetime) -> bool:
        minute, hour, dom, month, dow = self.fields
        if at.minute not in minute or at.hour not in hour or at.month not in month:
            return False
        day_ok, week_ok = at.day in dom, (at.isoweekday() % 7) in dow
        any_dom, any_dow = self._any_day
        if any_dom or any_dow:  # cron: when both are restricted, either one matching is enough
            return day_ok and week_ok
        return day_ok or week_ok

    def latest(self, after: float, until: float) -> datetime | None:
        """The last scheduled minute in ``(after, until]`` (epoch seconds), looking back at most 31 days."""
        end = datetime.fromtimestamp(until, UTC).replace(second=0, microsecond=0)
        start = datetime.fromtimestamp(max(after, until - 31 * 86400), UTC)
        t = end
        while t > start:
            if self.matches(t):
                return t
            t -= timedelta(minutes=1)
        return None
