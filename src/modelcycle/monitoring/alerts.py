"""Alert rules on monitored windows, alert events, and their delivery to a webhook and a log file.

A rule's alert is raised when its condition starts to hold and resolved when it stops: while it
holds, later windows do not raise it again. Both events go to the file at once and to the webhook
in the background (see ``modelcycle.monitoring.webhook``): the alert's row in the store records how
its latest event was delivered.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelcycle.errors import InvalidInputError
from modelcycle.monitoring.webhook import check_url, flush, submit

__all__ = ["AlertRules", "deliver", "evaluate_rules", "flush", "list_alerts", "raise_alert"]

log = logging.getLogger("modelcycle.monitoring")


@dataclass(frozen=True)
class AlertRules:
    """What raises an alert, and where alerts go.

    Args:
        drift_share: input drift alert when at least this share of the columns drifted (None: no drift alert).
        performance_metric: the live metric to watch (``roc_auc``, ``accuracy``, ``rmse`` …).
        performance_min: alert when the metric falls below it (higher-is-better metrics).
        performance_max: alert when the metric rises above it (lower-is-better metrics).
        quality: alert when a window's inputs break the model's schema.
        min_rows: windows with fewer rows are not judged for drift or quality.
        min_labelled: windows with fewer labelled rows are not judged for performance.
        webhook: ``http://`` or ``https://`` URL that gets each alert event as a JSON POST (redirects are not followed).
        file: a file each alert is appended to as one JSON line.

    Example:
        >>> AlertRules(drift_share=0.3, performance_metric="roc_auc", performance_min=0.75).performance_metric
        'roc_auc'
    """

    drift_share: float | None = 0.5
    performance_metric: str | None = None
    performance_min: float | None = None
    performance_max: float | None = None
    quality: bool = False
    min_rows: int = 50
    min_labelled: int = 30
    webhook: str | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        from modelcycle.evaluation.metrics import HIGHER_IS_BETTER, LOWER_IS_BETTER

        if self.drift_share is not None and not 0 < self.drift_share <= 1:
            raise InvalidInputError(f"drift share {self.drift_share!r} must be a fraction in (0, 1], e.g. 0.3")
        if self.performance_metric is not None and self.performance_metric not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
            raise InvalidInputError(f"unknown metric {self.performance_metric!r} for the performance alert; "
                                    f"choose one of {', '.join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))}")
        if self.performance_metric is not None and self.performance_min is None and self.performance_max is None:
            raise InvalidInputError(f"the performance alert on {self.performance_metric} needs min: or max:")
        if self.webhook is not None:
            check_url(self.webhook)


def _only_from(window: Any, since: float, version: int | None) -> bool:
    """Whether ``window`` ends after ``since`` and all its champion predictions came from ``version``."""
    served = window.summary.get("versions") or {}
    return version is not None and window.end > since and set(served) == {str(version)}


def _latest(windows: Sequence[Any], ok: Any) -> Any:
    for w in reversed(windows):
        if w.closed and ok(w):
            return w
    return None


def _conditions(rules: AlertRules, windows: Sequence[Any]) -> dict[str, tuple[bool, Any, str, dict[str, Any]]]:
    """rule → (holds, window, message, details), judged on the latest closed window with enough data."""
    out: dict[str, tuple[bool, Any, str, dict[str, Any]]] = {}
    enough = _latest(windows, lambda w: w.rows >= rules.min_rows)
    if rules.drift_share is not None and enough is not None and enough.drift is not None:
        share = enough.drift["share"]
        cols = enough.drift["drifted_columns"]
        out["drift"] = (share >= rules.drift_share, enough,
                        f"input drift: {share:.0%} of the columns drifted ({', '.join(cols[:6])}) in the window from {enough.label}",
                        {"share": share, "threshold": rules.drift_share, "drifted_columns": cols})
    if rules.quality and enough is not None and enough.quality is not None:
        errors = enough.quality["errors"]
        out["quality"] = (errors > 0, enough, f"data quality: {errors} schema error(s) in the window from {enough.label}",
                          {"anomalies": enough.quality["anomalies"][:5]})
    metric = rules.performance_metric
    if metric is not None:
        labelled = _latest(windows, lambda w: w.labelled >= rules.min_labelled and metric in w.metrics)
        if labelled is not None:
            value = labelled.metrics[metric]
            low = rules.performance_min is not None and value < rules.performance_min
            high = rules.performance_max is not None and value > rules.performance_max
            bound = f"below {rules.performance_min}" if low else f"above {rules.performance_max}" if high else "within bounds"
            out["performance"] = (low or high, labelled,
                                  f"performance: {metric} {value:.4g} is {bound} on {labelled.labelled} labelled rows "
                                  f"in the window from {labelled.label}",
                                  {"metric": metric, "value": value, "min": rules.performance_min, "max": rules.performance_max,
                                   "labelled": labelled.labelled})
    return out


def evaluate_rules(store: Any, model: str, rules: AlertRules, windows: Sequence[Any], now: float | None = None,
                   since: float | None = None, version: int | None = None) -> list[dict[str, Any]]:
    """Raise alerts whose condition started to hold and resolve those that stopped; returns what changed.

    ``since``: judge only windows that start at or after it (the controller passes the time the served version
    was promoted, so windows of the version it replaced neither raise nor resolve an alert about the new one).
    ``version``: the version promoted then; a window that began before ``since`` is judged too when every
    prediction in it came from that version (traffic that began in the same window as the promotion).
    """
    now = time.time() if now is None else now
    changed: list[dict[str, Any]] = []
    if since is not None:
        windows = [w for w in windows if w.start >= since or _only_from(w, since, version)]
        # a window's alert about the version replaced (promoted by anyone) is not about this one
        judged = {w.start for w in windows}
        for rule, firing in store.alert_firing(model).items():
            start = firing.window_start
            if start is not None and start < since and start not in judged:
                resolved = store.alert_resolve(model, rule, now)
                if resolved is not None:
                    changed.append({"id": resolved, "model": model, "rule": rule, "state": "resolved", "resolved_at": now,
                                    "message": f"resolved: the version it was about no longer serves ({firing.message})"})
    for rule, (holds, window, message, details) in _conditions(rules, windows).items():
        if holds:
            alert = {"id": uuid.uuid4().hex, "model": model, "rule": rule, "window_start": window.start, "raised_at": now,
                     "message": message, "details": details}
            if store.alert_raise(alert):
                changed.append({**alert, "state": "firing"})
        else:
            resolved = store.alert_resolve(model, rule, now)
            if resolved is not None:
                changed.append({"id": resolved, "model": model, "rule": rule, "state": "resolved", "resolved_at": now,
                                "message": f"resolved: {message}"})
    for alert in changed:
        deliver(alert, rules, store)
    return changed


def raise_alert(store: Any, model: str, rule: str, message: str, details: Mapping[str, Any] | None = None,
                rules: AlertRules | None = None) -> dict[str, Any] | None:
    """Raise an alert outside the window rules (a failed model load, a failed cycle); None when it is already firing."""
    alert = {"id": uuid.uuid4().hex, "model": model, "rule": rule, "window_start": None, "raised_at": time.time(),
             "message": message, "details": dict(details or {})}
    if not store.alert_raise(alert):
        return None
    alert["state"] = "firing"
    deliver(alert, rules, store)
    return alert


def deliver(alert: Mapping[str, Any], rules: AlertRules | None, store: Any = None) -> None:
    """Append an alert event to the rules' file and queue it for their webhook; returns without waiting for the webhook.

    A failed append or delivery is logged (and, for the webhook, recorded in the store), never raised.

    Args:
        alert: the event (``state`` firing or resolved), sent as JSON.
        rules: where it goes (nothing happens when None).
        store: the metadata store whose alert row records the webhook delivery (pending, then delivered or failed).
    """
    if rules is None:
        return
    body = json.dumps(dict(alert), default=str)
    if rules.file:
        try:
            path = Path(rules.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(body + "\n")
        except OSError as e:
            log.warning("could not append alert %s to %s: %s", alert.get("id"), rules.file, e)
    if rules.webhook:
        submit(alert, rules.webhook, store)


def list_alerts(store: Any, model: str | None = None, limit: int = 100) -> list[Any]:
    """The stored alerts (``entities.Alert``), newest first."""
    return store.alert_list(model, limit)
