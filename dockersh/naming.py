"""Container names: deterministic, valid for Docker, and collision-free across user names."""

from __future__ import annotations

#: Characters kept as they are; everything else (upper case too, so names that differ only in
#: case stay apart) becomes ``_xx`` (hex), and ``_`` itself is escaped, so the escape is injective.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
MAX_LENGTH = 63


def escape(text: str) -> str:
    return "".join(c if c in _SAFE else "".join(f"_{b:02x}" for b in c.encode()) for c in text)


def cap(name: str, limit: int = MAX_LENGTH) -> str:
    """Shorten a long name, keeping it unique with a hash of the whole."""
    if len(name) <= limit:
        return name
    import hashlib  # rare, and 7 ms: not on every login

    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11]}-{digest}"


def container_name(template: str, values: dict[str, str]) -> str:
    """Fill ``template`` with escaped values; the result always starts with a letter or digit."""
    name = template
    for key, value in values.items():
        name = name.replace("{" + key + "}", escape(value))
    if not name or not name[0].isalnum():
        name = "x" + name
    return cap(name)


def hostname(template: str, values: dict[str, str]) -> str:
    """A valid hostname (RFC 1123 label) from a template: invalid characters become ``-``."""
    name = template
    for key, value in values.items():
        name = name.replace("{" + key + "}", value)
    label = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in name.lower())
    return label.strip("-")[:MAX_LENGTH].strip("-") or "dockersh"
