"""Container names: deterministic, valid for Docker, and collision-free across user names."""

from __future__ import annotations

#: Characters kept as they are; everything else (upper case too, so names that differ only in
#: case stay apart) becomes ``_xx`` (hex), and ``_`` itself is escaped, so the escape is injective.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
MAX_LENGTH = 63


def escape(text: str) -> str:
    return "".join(c if c in _SAFE else "".join(f"_{b:02x}" for b in c.encode()) for c in text)


def unescape(text: str) -> str:
    """``escape`` undone (for showing names kept in file names)."""
    out, i = bytearray(), 0
    while i < len(text):
        pair = text[i + 1:i + 3]
        if text[i] == "_" and len(pair) == 2 and all(c in "0123456789abcdef" for c in pair):
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
        else:
            out += text[i].encode()
            i += 1
    return out.decode(errors="replace")


def cap(name: str, limit: int = MAX_LENGTH) -> str:
    """Shorten a long name, keeping it unique with a hash of the whole.

    The hash goes after ``_h``, which ``escape`` never writes (its ``_`` is always followed by
    two hex digits): so no short name, however chosen, equals the shortened name of another.
    """
    if len(name) <= limit:
        return name
    import hashlib  # rare, and 7 ms: not on every login

    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 12]}_h{digest}"


def container_name(template: str, values: dict[str, str]) -> str:
    """Fill ``template`` with escaped values: a valid Docker name (a letter or digit, then at
    least one more character). When it needs one, the prefix is an upper-case ``X``, which
    ``escape`` never writes, so prefixed names stay apart from every other name."""
    name = template
    for key, value in values.items():
        name = name.replace("{" + key + "}", escape(value))
    if len(name) < 2 or not (name[0].isascii() and name[0].isalnum()):
        name = "X" + (name or "-")
    return cap(name)


def hostname(template: str, values: dict[str, str]) -> str:
    """A valid hostname (RFC 1123 label) from a template: invalid characters become ``-``."""
    name = template
    for key, value in values.items():
        name = name.replace("{" + key + "}", value)
    label = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in name.lower())
    return label.strip("-")[:MAX_LENGTH].strip("-") or "dockersh"
