"""Prometheus metrics of this server process, served at `/metrics`.

Counters are bumped once per event (not per recipient) so that measuring
fan-out costs nothing next to doing it. The SFU's figures are read from its
forwarders' plain-int counters when `/metrics` is scraped, so forwarding a
packet costs no metrics call at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_PUBLISHED = Counter(
    "podium_events_published_total",
    "Call events committed to the log and published on the bus by this process.",
    ["type"],
    registry=REGISTRY,
)
EVENTS_RECEIVED = Counter(
    "podium_events_received_total",
    "Call events this process handled from the bus (gap fills included).",
    registry=REGISTRY,
)
FRAMES_DELIVERED = Counter(
    "podium_frames_delivered_total",
    "Event frames queued to WebSocket connections.",
    registry=REGISTRY,
)
GC_SWEEP_SECONDS = Gauge(
    "podium_gc_sweep_seconds",
    "How long the last full collection of the whole heap took (services/heap.py).",
    registry=REGISTRY,
)
GAP_FILLS = Counter(
    "podium_event_gap_fills_total",
    "Times events arrived out of seq order and missing ones were read from the log.",
    registry=REGISTRY,
)
SLOW_CLOSES = Counter(
    "podium_ws_slow_closes_total",
    "WebSocket connections closed because their outgoing queue was full.",
    registry=REGISTRY,
)
CONNECTIONS = Gauge("podium_ws_connections", "Open WebSocket connections.", registry=REGISTRY)
WATCHED_CALLS = Gauge(
    "podium_watched_calls", "Calls watched by at least one connection here.", registry=REGISTRY
)


#: `SfuCall.stats()` keys exported as process-wide counters: (key, metric name, help).
SFU_COUNTERS = (
    ("packets_forwarded", "podium_sfu_packets_forwarded", "RTP packets sent to subscribers."),
    ("bytes_forwarded", "podium_sfu_bytes_forwarded", "RTP bytes sent to subscribers."),
    (
        "dropped_at_gate",
        "podium_sfu_packets_dropped_at_gate",
        "Published RTP packets not forwarded because the source is not allowed (gate closed).",
    ),
    ("keyframe_requests", "podium_sfu_keyframe_requests", "PLIs sent to publishers."),
    ("nacks_answered", "podium_sfu_nacks_answered", "Packets resent from the NACK cache."),
)
#: Per-call gauges (totals unless call labels are on): (key, metric name, help).
SFU_GAUGES = (
    ("publishers", "podium_sfu_publishers", "Participants with an open source, per call."),
    ("subscribers", "podium_sfu_subscribers", "Participants receiving media, per call."),
    ("participants", "podium_sfu_participants", "Participants with a media session, per call."),
)


@dataclass
class SfuSnapshot:
    """Counter totals of calls no longer on this node, and each active call's `stats()`."""

    retired: Mapping[str, int] = field(default_factory=dict)
    calls: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


class SfuCollector(Collector):
    """Reads the SFU's counters at scrape time from whatever `source` the media service set.

    Per-call gauges carry a `call_cid` label only with `call_labels` on: call ids
    (of private calls too) are not published by default, and the gauges are
    totals over the node's calls.
    """

    def __init__(self) -> None:
        self.source: Callable[[], SfuSnapshot] | None = None
        self.call_labels = False

    def collect(self) -> Iterator[Metric]:
        snapshot = self.source() if self.source is not None else SfuSnapshot()
        for key, name, help_text in SFU_COUNTERS:
            total = snapshot.retired.get(key, 0)
            total += sum(stats.get(key, 0) for stats in snapshot.calls.values())
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], total)
            yield counter
        for key, name, help_text in SFU_GAUGES:
            if self.call_labels:
                gauge = GaugeMetricFamily(name, help_text, labels=["call_cid"])
                for cid, stats in sorted(snapshot.calls.items()):
                    gauge.add_metric([cid], stats.get(key, 0))
            else:
                gauge = GaugeMetricFamily(name, help_text)
                gauge.add_metric([], sum(stats.get(key, 0) for stats in snapshot.calls.values()))
            yield gauge
        calls = GaugeMetricFamily("podium_sfu_calls", "Calls with media on this node.")
        calls.add_metric([], len(snapshot.calls))
        yield calls


SFU = SfuCollector()
REGISTRY.register(SFU)
