"""Sizes ("512m", "4g") and durations ("30s", "12h", "7d") as admins write them."""

from __future__ import annotations

_SIZE = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DURATION = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _split(text: str, units: dict[str, int]) -> int | float | None:
    text = text.strip().lower()
    if text.endswith("ib") or (text.endswith("b") and len(text) > 1 and text[-2] in units):
        text = text[:-2] if text.endswith("ib") else text[:-1]
    number, unit = text, ""
    if text and text[-1] in units:
        number, unit = text[:-1], text[-1]
    try:
        value = float(number) if "." in number else int(number)
    except ValueError:
        return None
    value *= units[unit]
    # "1.e999" is float infinity and "nan" never compares: neither is a size or a duration.
    if not 0 <= value < 2**63:
        return None
    return value


def parse_size(text: str) -> int | None:
    """Bytes, or None when ``text`` is not a size."""
    value = _split(text, _SIZE)
    return None if value is None else int(value)


def parse_duration(text: str) -> int | None:
    """Seconds, or None when ``text`` is not a duration. "0" means never."""
    value = _split(text, _DURATION)
    return None if value is None else int(value)
