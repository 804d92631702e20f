"""[web] durations as seconds, for the broker and the server alike."""

from __future__ import annotations

from dockersh.config import units


def seconds(text: str, zero: float = 0.0) -> float:
    """A validated duration; ``zero`` is what 0 means (``math.inf`` for "never")."""
    value = units.parse_duration(text)
    assert value is not None  # validated with the config
    return float(value) if value else zero
