"""Podium: self-hosted audio rooms and video calls with a moderated stage."""

__version__ = "0.1.0"
