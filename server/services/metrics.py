"""Prometheus metrics of one app instance (its own registry: two apps in a process never mix).

Counters and histograms are updated where things happen (request middleware, prediction
service, login); the database-backed gauges (wafers, predictions, active model) are refreshed
on each scrape by the ``/metrics`` route.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "waferdesk_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "waferdesk_http_request_duration_seconds",
            "time to answer an HTTP request",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "waferdesk_predictions",
            "wafers served by /predict and /predict/batch, by where the result came from",
            ["source"],
            registry=r,
        )
        self.cache_lookups = Counter("waferdesk_cache_lookups", "prediction cache lookups", ["result"], registry=r)
        self.inference_seconds = Histogram(
            "waferdesk_inference_seconds", "model time per wafer", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.logins = Counter("waferdesk_logins", "login attempts", ["result"], registry=r)
        self.wafers_uploaded = Counter("waferdesk_wafers_uploaded", "wafers in uploads", ["stored"], registry=r)
        self.wafers_stored = Gauge("waferdesk_wafers_stored", "wafers in the database", registry=r)
        self.predictions_stored = Gauge("waferdesk_predictions_stored", "predictions in the database", registry=r)
        self.model_active = Gauge(
            "waferdesk_model_active", "1 for the model /predict serves", ["version", "sha256"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
