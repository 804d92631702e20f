"""A progress bar on stderr: redrawn in place on a terminal, one final line otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
REDRAW_EVERY = 0.1  # seconds


class Bar:
    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.fraction = 0.0
        self.detail = ""
        self.drawn = 0.0

    def line(self) -> str:
        filled = int(self.fraction * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        detail = f"  {self.detail}" if self.detail else ""
        return f"{self.label} [{bar}] {int(self.fraction * 100):3d}%{detail}"

    def update(self, fraction: float, detail: str = "") -> None:
        self.fraction, self.detail = min(1.0, max(self.fraction, fraction)), detail
        if self.tty and time.monotonic() - self.drawn >= REDRAW_EVERY:
            self.drawn = time.monotonic()
            self.stream.write(f"\r{self.line()}\x1b[K")
            self.stream.flush()

    def finish(self, detail: str, complete: bool = True) -> None:
        if complete:
            self.fraction = 1.0
        self.detail = detail
        prefix, clear = ("\r", "\x1b[K") if self.tty else ("", "")
        self.stream.write(f"{prefix}{self.line()}{clear}\n")
        self.stream.flush()
