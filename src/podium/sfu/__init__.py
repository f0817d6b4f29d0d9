"""Podium's selective forwarding unit."""
