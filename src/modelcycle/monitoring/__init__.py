"""Monitoring: the prediction log in windows — data quality, input and prediction drift, live performance, alerts."""

from modelcycle.monitoring.alerts import AlertRules, list_alerts
from modelcycle.monitoring.monitor import MonitorReport, Window, monitor
from modelcycle.monitoring.windows import parse_window

__all__ = ["AlertRules", "MonitorReport", "Window", "list_alerts", "monitor", "parse_window"]
