"""The daemon's Prometheus metrics (``/metrics``), one registry per daemon.

Labels are the names of work (``transfer:chain-a->chain-b``) and chains, never anything a
stranger chooses, so the number of series is bounded by the config.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)


class Metrics:
    """Counters, gauges and the relay-latency histogram."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.packets = Counter(
            "interlock_packets_relayed",
            "Packets delivered, by work and action",
            ["work", "action"],
            registry=r,
        )
        self.redundant = Counter(
            "interlock_redundant_avoided",
            "Packets found already delivered at the destination before sending",
            ["work"],
            registry=r,
        )
        self.headers = Counter(
            "interlock_headers_submitted", "Light-client header updates sent", ["work"], registry=r
        )
        self.swap_actions = Counter(
            "interlock_swap_actions", "HTLC claims and refunds sent", ["work", "method"], registry=r
        )
        self.tx_failures = Counter(
            "interlock_tx_failures",
            "Transactions refused or failed, by error code",
            ["chain", "code"],
            registry=r,
        )
        self.misbehaviour = Counter(
            "interlock_misbehaviour", "Conflicting headers found and reported", ["work"], registry=r
        )
        self.bus_rejected = Counter(
            "interlock_bus_rejected",
            "Bus messages refused by the verifying subscriber",
            ["work"],
            registry=r,
        )
        self.reorg_notices = Counter(
            "interlock_reorg_notices",
            "Reorg messages read from the bus for a source (unverified: each is checked)",
            ["work"],
            registry=r,
        )
        self.reorgs = Counter(
            "interlock_source_reorgs",
            "Source reorganisations followed, checked through its RPC (above final blocks)",
            ["work"],
            registry=r,
        )
        self.refusals = Counter(
            "interlock_compliance_refusals",
            "Transfers the destination refused by compliance rule (refunded at the source)",
            ["work", "rule"],
            registry=r,
        )
        self.maker_refused = Counter(
            "interlock_maker_refused",
            "Acceptances a maker refused, by reason (forged, expired, taken, malformed, ...)",
            ["work", "reason"],
            registry=r,
        )
        self.maker_swaps = Counter(
            "interlock_maker_swaps",
            "Swaps a maker answered (begun) and ended, by outcome",
            ["work", "outcome"],
            registry=r,
        )
        self.maker_tx_failures = Counter(
            "interlock_maker_tx_failures",
            "A maker's transactions refused, unsent or failed in a block, by chain and code",
            ["work", "chain", "code"],
            registry=r,
        )
        self.backlog = Gauge(
            "interlock_backlog", "Packets seen and not yet delivered", ["work"], registry=r
        )
        self.client_lag = Gauge(
            "interlock_client_lag",
            "Source height minus the destination client's height",
            ["work"],
            registry=r,
        )
        self.source_height = Gauge(
            "interlock_source_height", "Last source height processed", ["work"], registry=r
        )
        self.latency = Histogram(
            "interlock_relay_latency_seconds",
            "Source commit to destination commit of a delivered packet",
            ["work"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
