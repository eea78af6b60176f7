"""Prometheus metrics, one registry per app (no global collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.webhooks = Counter(
            "chancenter_webhooks_received",
            "Webhook requests by channel kind and outcome (stored, duplicate, rejected, invalid)",
            ["kind", "outcome"],
            registry=r,
        )
        self.messages = Counter(
            "chancenter_messages",
            "Messages by direction: in when stored, out when sent or failed for good (what "
            "/api/v1/usage counts, once the outbox is drained)",
            ["direction"],
            registry=r,
        )
        self.send_failures = Counter(
            "chancenter_send_failures",
            "Outbound sends that failed, by kind (retry, permanent)",
            ["kind"],
            registry=r,
        )
        self.bot_errors = Counter(
            "chancenter_bot_errors",
            "Bot calls that failed or timed out (the contact got the fallback reply)",
            registry=r,
        )
        self.handovers = Counter(
            "chancenter_handovers",
            "Conversations handed to people, by trigger (bot, keyword, fallbacks, errors)",
            ["trigger"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "chancenter_webhook_attempts",
            "Outgoing webhook attempts by outcome (delivered, retry, failed)",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "chancenter_work_dead_letters",
            "Work items set aside after repeated failures",
            registry=r,
        )
        self.queue_depth = Gauge(
            "chancenter_queue_depth",
            "Rows waiting, by queue (work, dead, outbox, desk, webhooks)",
            ["queue"],
            registry=r,
        )
        self.ingest_seconds = Histogram(
            "chancenter_ingest_seconds",
            "Time to commit what a webhook or a web-chat frame carried and queue it",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
