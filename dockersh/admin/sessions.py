"""`dockersh sessions [USER] [--json]`: the sessions of the audit file, oldest first."""

from __future__ import annotations

import json
import sys
from typing import Any

from dockersh.admin import auditlog
from dockersh.admin.auditlog import Session
from dockersh.admin.ops import since, table
from dockersh.plan import pipeline

COLUMNS = ("SESSION", "USER", "CONTAINER", "START", "DURATION", "EXIT", "RECORDED")


def row(s: Session) -> tuple[str, ...]:
    duration = "-" if s.duration is None else since(s.duration)
    return (s.id, s.user, s.where, str(s.start.get("time", "?")), duration, s.status,
            "yes" if s.recording else "no")


def to_json(s: Session) -> dict[str, Any]:
    exit_code = None if s.end is None else s.end.get("exit")
    return {"session": s.id, "user": s.user, "container": s.start.get("container"),
            "target": s.start.get("target"), "command": s.start.get("command"),
            "remote": s.start.get("remote"), "mode": s.start.get("mode"),
            "start": s.start.get("time"), "end": None if s.end is None else s.end.get("time"),
            "duration": s.duration, "exit": exit_code,
            "state": "ended" if s.end is not None else s.status,
            "recording": s.recording or None}


def run(config_path: str, user: str | None, as_json: bool) -> int:
    path = auditlog.path_of(pipeline.global_config(config_path))
    found = [s for s in auditlog.sessions(path) if user in (None, s.user)]
    if as_json:
        print(json.dumps([to_json(s) for s in found], indent=2))
    elif found:
        sys.stdout.write(table([COLUMNS, *(row(s) for s in found)]))
    else:
        print(f"no sessions in {path}" + (f" for {user}" if user else ""), file=sys.stderr)
    return 0
