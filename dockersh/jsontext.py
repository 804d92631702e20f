"""JSON for the login path without the ``json`` module (10 ms to import, ``re`` included): the
C scanner and string encoder behind it, for the engine's answers and the audit records."""

from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from typing import Any


class _JSONContext:
    """The attributes the C scanner reads from json.JSONDecoder, with json's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float


def loads(text: str) -> Any:
    try:
        from _json import make_scanner
    except ImportError:  # an interpreter without the C accelerator
        import json

        return json.loads(text)
    value, end = make_scanner(_JSONContext())(text, 0)  # type: ignore[arg-type]
    if text[end:].strip():
        raise ValueError("trailing data after JSON value")
    return value


def dumps(value: Any) -> str:
    """JSON for the few shapes dockersh sends (dicts, lists, strings, numbers, bools, None),
    with the C string encoder: ``json`` itself would cost 10 ms to import."""
    from _json import encode_basestring_ascii as string

    if isinstance(value, str):
        return string(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{string(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")
