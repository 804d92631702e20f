"""The one error type users see."""

from __future__ import annotations

#: Exit status for dockersh's own failures, apart from what a command in the container returns
#: (docker uses 125 the same way: the error came from the tool, not from your command).
EXIT_ERROR = 125


def escaped(text: str) -> str:
    """``text`` with its control characters (newlines, terminal escapes) written as escapes:
    text from a user's file stays one line and never drives root's or a log's terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class DockershError(Exception):
    """A failure explained in one line: ``dockersh: <message>`` on stderr, logged, non-zero exit."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
