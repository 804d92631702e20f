"""Audit records of sessions: syslog (LOG_AUTHPRIV) and JSON lines in a file.

Written by the session monitor, on the path of every session: for a short command the monitor's
own work is the session's latency, so this module imports nothing heavy (no json, no typing).
"""

from __future__ import annotations

import os
import syslog
import time

from dockersh import procstat
from dockersh.errors import DockershError
from dockersh.jsontext import dumps

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from dockersh.backend.base import Container
    from dockersh.login.identity import User
    from dockersh.plan.sessionplan import SessionPlan


def session_record(plan: SessionPlan, user: User, container: Container,
                   command: str | None, environ: Mapping[str, str], pid: int) -> dict[str, Any]:
    connection = environ.get("SSH_CONNECTION", "").split()
    target = {"target": plan.target["name"]} if plan.target else {}
    return {
        "session": session_id(user.name, pid),
        "user": user.name,
        "uid": user.uid,
        "remote": remote(connection),
        "container": plan.name,
        **target,
        "container_id": container.id[:12],
        "mode": plan.exec,
        **command_fields("interactive" if command is None else command),
        "pid": pid,
    }


#: A command longer than this (UTF-8 bytes) is kept as its start, its length and its hash: a
#: session's start and end records both carry it, and its recording's header (up to 128 KiB).
COMMAND_KEPT = 4096


def command_fields(command: str) -> dict[str, Any]:
    """``command`` as records keep it: whole up to COMMAND_KEPT bytes, else its first
    COMMAND_KEPT bytes with ``command_length`` (bytes) and ``command_sha256`` of the whole."""
    data = command.encode("utf-8", "surrogateescape")
    if len(data) <= COMMAND_KEPT:
        return {"command": command}
    import hashlib  # only for such commands

    return {"command": data[:COMMAND_KEPT].decode("utf-8", "replace"),
            "command_length": len(data), "command_sha256": hashlib.sha256(data).hexdigest()}


def session_id(user: str, pid: int) -> str:
    """A session's name, unique on the host and sorting by start time: UTC start, user, the
    monitor's pid (recordings and `dockersh sessions` use it). The start is the process's, so
    every record of one login (container-created, session-start...) names the same session."""
    started = time.time() - since_start()
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}-{user}-{pid}"


def since_start() -> float:
    """Seconds since this process started: since the front started, as the front execs sudo
    and sudo execs the entry in place (the session-start record's "latency"). The kernel
    counts in clock ticks (10 ms)."""
    ticks = int(procstat.fields(os.getpid())[procstat.START_TIME])
    return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"))


def container_event(plan: SessionPlan, user: User, event: str) -> None:
    """container-created, -started or -recreated: lifecycle's changes, for the metrics."""
    write(plan, {"session": session_id(user.name, os.getpid()), "user": user.name,
                 "uid": user.uid, "container": plan.name, "event": event})


def remote(connection: list[str]) -> str:
    """The client's address and port from SSH_CONNECTION; an IPv6 address in brackets."""
    if len(connection) < 2:
        return "local"
    address, port = connection[0], connection[1]
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def write(plan: SessionPlan, record: Mapping[str, Any]) -> None:
    """Write one record to every sink of the plan's [audit]."""
    append(plan.audit_file, plan.audit_syslog, record)


def append(path: str, to_syslog: bool, record: Mapping[str, Any]) -> None:
    """Write one record to syslog and the file; fail closed when the file cannot take it.

    A start record that cannot be written stops the session before it starts (DockershError);
    any other record (the session already ran, or never will) goes to syslog instead, with
    why. Time in UTC, whatever TZ the session brought."""
    line = dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record})
    if to_syslog:
        log(syslog.LOG_INFO, line)
    if not path:
        return
    try:
        os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            data = (line + "\n").encode()
            if os.write(fd, data) != len(data):
                raise OSError(0, "short write")
        finally:
            os.close(fd)
    except OSError as exc:
        problem = f"cannot write the audit file {path} ({exc.strerror or exc})"
        if record.get("event") == "session-start":
            raise DockershError(f"{problem}; refusing to start the session") from None
        log(syslog.LOG_ERR, f"{problem}; the record: {line}")


def log(priority: int, line: str) -> None:
    syslog.openlog("dockersh", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
    syslog.syslog(priority, line)
