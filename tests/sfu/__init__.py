"""Tests of `podium.sfu`, mirroring its modules; packet code is checked against aiortc."""

from __future__ import annotations

from hypothesis import settings

#: Property tests stay fast: a moderate number of examples, no per-example deadline.
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)
