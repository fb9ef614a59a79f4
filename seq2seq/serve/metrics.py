"""The server's Prometheus metrics (``GET /metrics``), in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServeMetrics:
    """Requests, sentences, errors by kind, latency and batch sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "seq2seq_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.sentences = Counter("seq2seq_sentences", "Sentences translated", registry=self.registry)
        self.errors = Counter("seq2seq_errors", "Refused or failed requests by kind", ["kind"], registry=self.registry)
        self.latency = Histogram(
            "seq2seq_request_seconds",
            "Time from a translation request's arrival to its answer",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_sentences = Histogram(
            "seq2seq_batch_sentences", "Sentences per search batch", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.batch_seconds = Histogram(
            "seq2seq_batch_seconds", "Time searching one batch", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.queued = Gauge("seq2seq_queued_sentences", "Sentences waiting for a batch", registry=self.registry)

    def batch(self, sentences: int, seconds: float) -> None:
        self.batch_sentences.observe(sentences)
        self.batch_seconds.observe(seconds)
        self.sentences.inc(sentences)
