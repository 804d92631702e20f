"""`dockersh replay SESSION`: a recording (asciicast v2) played to the terminal with its timing.

Only output events are written ("o"); input, resizes and markers only take their time. What a
session printed is the user's, so it is hostile to the admin's terminal: it is written through
termfilter's Filter (unless ``--raw``), and when stdout is a terminal, that terminal is raw
(no echo, no signals from its keys) while it plays, its input read and dropped ('q' or Ctrl-C
stop), and at the end its modes are reset and a cursor report asked for: the terminal answers
in order, so once that answer is read, nothing the recording made it send is still on its way
to the admin's shell; only then are its settings put back.
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from dockersh.admin import recordings, termfilter
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


def play(lines: BinaryIO, path: str, write: Callable[[bytes], None],
         pause: Callable[[float], None], speed: float, idle_limit: float | None,
         raw: bool) -> None:
    """Write the output events (filtered unless ``raw``) at their times divided by ``speed``,
    no gap longer than ``idle_limit`` seconds (else the header's idle_time_limit, as asciinema
    does); ``pause`` waits."""
    first = lines.readline().decode("utf-8", "replace")
    limit = idle_limit
    if limit is None:
        given = header(first, path).get("idle_time_limit")
        limit = float(given) if isinstance(given, int | float) and given > 0 else None
    else:
        header(first, path)
    sieve = None if raw else termfilter.Filter()
    last, due = 0.0, time.monotonic()
    for number, raw_line in enumerate(lines, start=2):
        if not raw_line.strip():
            continue
        at, kind, data = event(raw_line.decode("utf-8", "replace"), number, path)
        gap = max(0.0, at - last)
        last = at
        due += (gap if limit is None else min(gap, limit)) / speed
        if kind != "o":
            continue
        pause(due - time.monotonic())
        text = data if sieve is None else sieve.feed(data)
        if text:
            write(text.encode("utf-8", "replace"))


# Off: mouse and focus reporting, bracketed paste, synchronized output, application cursor
# keys and keypad, insert mode, the alternate screen, origin mode, the scrolling region (saved
# and restored around it: setting it homes the cursor); on: autowrap, the cursor; then SGR 0,
# ASCII in G0 and G0 in use; a hyperlink the recording left open (OSC 8) is closed.
RESET = ("".join(f"\x1b[?{mode}l" for mode in (9, 1000, 1001, 1002, 1003, 1004, 1005, 1006,
                                                1015, 1016, 2004, 2026, 1, 1049, 6))
         + "\x1b>\x1b[4l\x1b7\x1b[r\x1b8\x1b[?7h\x1b[?25h\x1b[0m\x1b(B\x0f\x1b]8;;\x1b\\").encode()
SENTINEL = b"\x1b[6n"  # a cursor position report (CSI 6 n), answered CSI row ; col R
ANSWER = re.compile(rb"\x1b\[[0-9]*;[0-9]*R")
ANSWER_TIMEOUT = 3.0  # seconds: a terminal that does not answer holds replay this long
QUIT_KEYS = (b"q", b"\x03")


class Stopped(Exception):
    """The admin pressed a quit key, or the terminal went away."""


class Terminal:
    """The admin's terminal while a recording plays to it: raw, its input read and dropped."""

    def __init__(self, fd: int) -> None:
        import termios
        import tty

        self.fd = fd
        self.saved = termios.tcgetattr(fd)
        tty.setraw(fd, termios.TCSANOW)  # no echo, no ISIG (^Z, ^C are bytes), no IXON

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def read(self, timeout: float) -> bytes:
        """What the terminal sent within ``timeout`` seconds (b"" if nothing)."""
        if not select.select([self.fd], [], [], max(0.0, timeout))[0]:
            return b""
        try:
            got = os.read(self.fd, 4096)
        except OSError as e:  # EIO: hung up
            raise Stopped from e
        if not got:
            raise Stopped
        return got

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, dropping what the terminal sends; Stopped on a quit key."""
        deadline = time.monotonic() + seconds
        while True:
            got = self.read(deadline - time.monotonic())
            if any(key in got for key in QUIT_KEYS):
                raise Stopped
            if not got and time.monotonic() >= deadline:
                return

    def close(self) -> None:
        """Reset the modes, read input up to the answer to the sentinel (or the timeout), and
        put the settings back, flushing what is left."""
        import termios

        try:
            self.write(RESET + SENTINEL)
            termios.tcdrain(self.fd)
            seen, deadline = b"", time.monotonic() + ANSWER_TIMEOUT
            while not ANSWER.search(seen) and time.monotonic() < deadline:
                seen = seen[-32:] + self.read(deadline - time.monotonic())
        except (Stopped, OSError, termios.error):
            pass  # hung up: nothing to protect
        finally:
            termios.tcsetattr(self.fd, termios.TCSAFLUSH, self.saved)
            os.close(self.fd)


def open_terminal() -> Terminal | None:
    """The terminal stdout writes to, opened for reading and writing (/dev/tty when that is
    the one); None when stdout is no terminal."""
    if not os.isatty(1):
        return None
    for name in ("/dev/tty", os.ttyname(1)):
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            continue
        if os.fstat(fd).st_rdev == os.fstat(1).st_rdev:
            return Terminal(fd)
        os.close(fd)
    raise DockershError(f"cannot open {os.ttyname(1)} to read its answers")


def to_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def run(config_path: str, session: str, speed: float, idle_limit: float | None,
        raw: bool) -> int:
    if not speed > 0 or (idle_limit is not None and not idle_limit > 0):
        raise DockershError("--speed and --idle-limit must be positive numbers", status=2)
    path = recordings.path_of(pipeline.global_config(config_path), session)
    fd = recordings.open_recording(path)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as lines:
        terminal = open_terminal()
        if terminal is None:
            play(lines, path, to_stdout, lambda s: time.sleep(max(0.0, s)), speed, idle_limit,
                 raw)
            return 0
        try:
            play(lines, path, terminal.write, terminal.pause, speed, idle_limit, raw)
        except Stopped:
            pass
        finally:
            terminal.close()
    return 0
