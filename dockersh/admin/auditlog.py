"""The audit file read back: its records, and the sessions they make up (`sessions`, `metrics`).

A session is its session-start and session-end records, paired by their "session" name
(login/audit.py). Without an end it is still running while its monitor (the start record's
"pid") lives, and lost when that process is gone (killed with SIGKILL, the host rebooted).
Sessions that started before logrotate's last rotation are found in ``FILE.1`` (plain text:
etc/logrotate.d/dockersh has delaycompress), of which only the starts without an end are kept.
"""

from __future__ import annotations

import calendar
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dockersh import procstat
from dockersh.config.schema import Config
from dockersh.errors import DockershError

RUNNING, LOST = "running", "lost"


def path_of(config: Config) -> str:
    if not config.audit.file:
        raise DockershError('[audit] file = "": there is no audit file to read')
    return config.audit.file


def records(path: str) -> Iterator[dict[str, Any]]:
    """The file's records in order; a line that is not a JSON object is skipped (a write cut
    short by a full disk)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DockershError(f"cannot read the audit file {path} ({exc.strerror})") from None


def carried_over(path: str) -> dict[str, dict[str, Any]]:
    """The start records of the rotated file (``path``.1) without an end there, by session:
    sessions that ran across the rotation, or still run."""
    return unended(records(f"{path}.1"))


def unended(found: Iterable[dict[str, Any]],
            starts: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """``starts`` with the start records of ``found`` added and those ``found`` ends removed:
    read as a stream, only the sessions still open are kept."""
    starts = {} if starts is None else starts
    for record in found:
        name, event = record.get("session"), record.get("event")
        if isinstance(name, str):
            if event == "session-start":
                starts[name] = record
            elif event == "session-end":
                starts.pop(name, None)
    return starts


@dataclass(frozen=True)
class Session:
    id: str
    start: dict[str, Any]  # the session-start record
    end: dict[str, Any] | None  # its session-end record
    status: str  # the exit status as text, RUNNING or LOST
    duration: float | None  # seconds; so far while running; None when lost

    @property
    def user(self) -> str:
        return str(self.start.get("user", ""))

    @property
    def where(self) -> str:
        """The container the session ran in, or the target it entered."""
        target = self.start.get("target")
        return f"target {target}" if target else str(self.start.get("container", ""))

    @property
    def recording(self) -> str:
        """The recording's path ("" when not recorded), as the records name it."""
        for record in (self.start, self.end or {}):
            if isinstance(record.get("recording"), str):
                return str(record["recording"])
        return ""


def epoch(stamp: object) -> float | None:
    """A record's "time" (UTC, 1 s resolution) in epoch seconds."""
    try:
        return float(calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def pair(found: Iterable[dict[str, Any]], alive: Callable[[dict[str, Any]], bool],
         now: float, carried: dict[str, dict[str, Any]] | None = None) -> list[Session]:
    """Sessions in the order they started; ``carried``: the open starts of the rotated file
    (`carried_over`), kept when their end is in ``found`` or they still run (not when lost:
    they belong to that file), an end whose start is in neither is left out. ``alive(start)``:
    whether the start record's monitor still runs."""
    carried = carried or {}
    starts: dict[str, dict[str, Any]] = dict(carried)
    ends: dict[str, dict[str, Any]] = {}
    for record in found:
        name, event = record.get("session"), record.get("event")
        if isinstance(name, str) and event in ("session-start", "session-end"):
            (starts if event == "session-start" else ends)[name] = record
    sessions = []
    for name, start in starts.items():
        end = ends.get(name)
        began = epoch(start.get("time"))
        if end is not None:
            status = str(end.get("exit", "?"))
            duration = end.get("duration")
            duration = float(duration) if isinstance(duration, int | float) else None
        elif alive(start):
            status, duration = RUNNING, None if began is None else max(0.0, now - began)
        elif name in carried:
            continue
        else:
            status, duration = LOST, None
        sessions.append(Session(name, start, end, status, duration))
    return sessions


def boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise DockershError("/proc/stat has no btime")


def monitor_alive(start: dict[str, Any], booted: float) -> bool:
    """The start record's pid is a process that started before the record was written: the
    session's monitor, not a process that got the pid later."""
    pid, written = start.get("pid"), epoch(start.get("time"))
    if not isinstance(pid, int) or pid <= 0 or written is None:
        return False
    try:
        ticks = int(procstat.fields(pid)[procstat.START_TIME])
    except (OSError, IndexError, ValueError):
        return False
    # btime and the record's time are whole seconds: a second of slack each way.
    return booted + ticks / os.sysconf("SC_CLK_TCK") <= written + 2


def sessions(path: str) -> list[Session]:
    """The sessions of the audit file, with those the last rotation carried over, as they
    stand now."""
    booted = boot_time()
    return pair(records(path), lambda start: monitor_alive(start, booted), time.time(),
                carried_over(path))
