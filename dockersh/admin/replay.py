"""`dockersh replay SESSION`: a recording (asciicast v2) played to the terminal with its timing.

Only output events are written ("o"); input, resizes and markers only take their time. What a
session printed is the user's, so it may ask the admin's terminal to answer (a report of its
title, of the cursor): such answers would reach the admin's shell as typed input once replay
exits, so replay turns the terminal's echo off while it plays and discards pending input at the
end.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, BinaryIO

from dockersh.admin import recordings
from dockersh.errors import DockershError
from dockersh.plan import pipeline


def header(line: str, path: str) -> dict[str, Any]:
    try:
        found = json.loads(line)
    except ValueError:
        found = None
    if not isinstance(found, dict) or found.get("version") != 2:
        raise DockershError(f"{path} is not an asciicast v2 recording (its first line is no v2 "
                            "header)")
    return found


def event(line: str, number: int, path: str) -> tuple[float, str, str]:
    try:
        found = json.loads(line)
    except ValueError:
        found = None
    if (isinstance(found, list) and len(found) >= 3 and isinstance(found[0], int | float)
            and not isinstance(found[0], bool) and found[0] >= 0
            and isinstance(found[1], str) and isinstance(found[2], str)):
        return float(found[0]), found[1], found[2]
    raise DockershError(f"{path}, line {number}: not an asciicast v2 event")


def play(lines: BinaryIO, path: str, out: BinaryIO, speed: float,
         idle_limit: float | None) -> None:
    """Write the output events at their times divided by ``speed``, no gap longer than
    ``idle_limit`` seconds (else the header's idle_time_limit, as asciinema does)."""
    first = lines.readline().decode("utf-8", "replace")
    limit = idle_limit
    if limit is None:
        given = header(first, path).get("idle_time_limit")
        limit = float(given) if isinstance(given, int | float) and given > 0 else None
    else:
        header(first, path)
    last, due = 0.0, time.monotonic()
    for number, raw in enumerate(lines, start=2):
        if not raw.strip():
            continue
        at, kind, data = event(raw.decode("utf-8", "replace"), number, path)
        gap = max(0.0, at - last)
        last = at
        due += (gap if limit is None else min(gap, limit)) / speed
        if kind != "o":
            continue
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        out.write(data.encode("utf-8", "surrogateescape"))
        out.flush()


def quiet_terminal() -> list[Any] | None:
    """Stop the terminal echoing what it receives (its answers would clutter the screen); the
    settings to put back, None when stdin is no terminal."""
    if not os.isatty(0):
        return None
    import termios

    saved = termios.tcgetattr(0)
    quiet = termios.tcgetattr(0)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(0, termios.TCSANOW, quiet)
    return saved


def restore_terminal(saved: list[Any] | None) -> None:
    """Put the settings back, dropping what the terminal sent meanwhile (see the module's doc)."""
    if saved is None:
        return
    import termios

    time.sleep(0.1)  # the terminal's answers to the last bytes are still on their way
    termios.tcsetattr(0, termios.TCSAFLUSH, saved)


def run(config_path: str, session: str, speed: float, idle_limit: float | None) -> int:
    if not speed > 0 or (idle_limit is not None and not idle_limit > 0):
        raise DockershError("--speed and --idle-limit must be positive numbers", status=2)
    path = recordings.path_of(pipeline.global_config(config_path), session)
    fd = recordings.open_recording(path)
    os.set_blocking(fd, True)
    saved = quiet_terminal()
    try:
        with os.fdopen(fd, "rb") as lines:
            play(lines, path, sys.stdout.buffer, speed, idle_limit)
    finally:
        restore_terminal(saved)
    return 0
