"""Prometheus metrics of this server process, served at `/metrics`.

Counters are bumped once per event (not per recipient) so that measuring
fan-out costs nothing next to doing it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

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
