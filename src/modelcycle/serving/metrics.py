"""The model server's Prometheus metrics, in a registry of their own (one per server)."""

from __future__ import annotations

__all__ = ["ServerMetrics"]


class ServerMetrics:
    """Counters, gauges and histograms of one model server; ``/metrics`` renders ``registry``."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("modelcycle_requests", "Requests answered", ["route", "code"], registry=self.registry)
        self.errors = Counter("modelcycle_errors", "Requests answered with an error", ["route", "kind"], registry=self.registry)
        self.latency = Histogram("modelcycle_request_seconds", "Time to answer a prediction request", ["route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.rows = Counter("modelcycle_predicted_rows", "Rows predicted", ["role"], registry=self.registry)
        self.prediction = Histogram("modelcycle_prediction_value", "Predicted values (or the positive class' probability)",
                                    registry=self.registry, buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 10, 100, 1000))
        self.version = Gauge("modelcycle_model_version", "Version being served", ["model"], registry=self.registry)
        self.swap_failures = Gauge("modelcycle_swap_failures", "New versions that failed to load and were not served",
                                   registry=self.registry)
        self.dropped = Gauge("modelcycle_prediction_log_dropped", "Predicted rows the log could not keep up with",
                             registry=self.registry)
        self.spool_bytes = Gauge("modelcycle_prediction_log_spool_bytes", "Bytes of the prediction log waiting to be shipped to the "
                                 "object store", registry=self.registry)
        self.shipped = Gauge("modelcycle_prediction_log_shipped_files", "Prediction log files shipped from the spool to the object store",
                             registry=self.registry)
        self.ship_failures = Gauge("modelcycle_prediction_log_ship_failures", "Attempts to ship the prediction log that failed (the "
                                   "store was out of reach); the files stay in the spool", registry=self.registry)
        self.rejected = Counter("modelcycle_overload_rejections", "Requests answered 503 because the queue was full",
                                registry=self.registry)
        self.refused = Counter("modelcycle_refused_requests", "Requests refused before reading them (host, content type, token, slow body)",
                               ["reason"], registry=self.registry)
