"""What dockersh manages, as ``ls`` and ``gc`` see it: containers found by their labels.

Labels are the only state (DESIGN.md). Everything else about a container is read live: the
engine's inspect data, the user's locks (live sessions, "idle since") and the processes on the
host (sessions entered by docker exec or nsenter, whether or not a dockersh monitor still runs).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dockersh import procstat
from dockersh.backend.base import epoch
from dockersh.backend.registry import get_backend
from dockersh.config import schema, units
from dockersh.errors import DockershError
from dockersh.labels import LABEL_LIFETIME, LABEL_UID, LABEL_USER
from dockersh.lifecycle import ensure
from dockersh.login import identity, locks
from dockersh.plan import pipeline, planner

if TYPE_CHECKING:
    from dockersh.backend.base import Backend, Container

#: ``config`` of a container: built from the config that applies now, or not, or nobody's.
CURRENT, STALE, ORPHAN, INVALID = "current", "stale", "orphan", "invalid"


@dataclass(frozen=True)
class Managed:
    """One managed container, described for an admin."""

    user: str
    uid: int
    container: str
    id: str
    image: str
    state: str  # the engine's: running, exited, paused, created, restarting, dead
    exit: str  # why it is not running ("" when running)
    sessions: int
    idle_since: float | None  # epoch seconds; None while a session is live
    created: float
    config: str  # CURRENT, STALE, ORPHAN or INVALID
    why: str  # what makes it stale, orphan or invalid
    idle_timeout: int  # seconds, 0 = never (from the user's effective config)
    idle_action: str  # "stop" or "remove"

    def to_json(self, now: float) -> dict[str, Any]:
        data = asdict(self)
        data["idle_since"] = iso(self.idle_since)
        data["idle_seconds"] = None if self.idle_since is None else int(now - self.idle_since)
        data["created"] = iso(self.created)
        data["age_seconds"] = int(now - self.created)
        return data


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def backend_for(config_path: str) -> Backend:
    return get_backend(pipeline.global_config(config_path))


def find(backend: Backend, user: str | None = None) -> list[Container]:
    """Every managed container (of one user), sorted by user then name."""
    label = LABEL_USER if user is None else f"{LABEL_USER}={user}"
    ids = [item.id for item in backend.list_by_label(label)
           if LABEL_LIFETIME not in item.labels]  # per-session containers: gc sweeps them
    found = [c for c in backend.inspect_many(ids) if c is not None]
    return sorted(found, key=lambda c: (c.labels.get(LABEL_USER, ""), c.name))


def entered_processes() -> dict[int, set[int]]:
    """Host pids, by pid namespace, of processes put into that namespace from outside it.

    A docker exec process is a child of containerd-shim, an nsenter session a child of its
    monitor: both have a parent in another pid namespace. So has each container's init, which
    callers leave out. A session forked by nsenter mode's spare is the spare's child (by its
    name: a user who names a process of theirs so only keeps their own container counted busy).
    One pass over /proc serves every container.
    """
    procs: dict[int, tuple[int, int, bytes]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
            ns = os.stat(f"/proc/{entry}/ns/pid").st_ino
            name = data.rpartition(b")")[0].partition(b"(")[2]
            procs[int(entry)] = (int(procstat.parse(data)[procstat.PPID]), ns, name)
        except (OSError, ValueError, IndexError):
            continue  # gone, or a zombie
    host_ns = os.stat("/proc/self/ns/pid").st_ino
    entered: dict[int, set[int]] = {}
    for pid, (ppid, ns, _) in procs.items():
        parent_ns, parent_name = procs.get(ppid, (0, 0, b""))[1:]
        if ns != host_ns and (parent_ns != ns or parent_name == b"dockersh-spare"):
            entered.setdefault(ns, set()).add(pid)
    return entered


def session_count(container: Container, user: str, live: Live) -> int:
    """Live sessions: the shared flocks of session monitors, or processes entered from outside
    (a session whose monitor was killed still counts), whichever is more."""
    flocks = locks.count_sessions(user, live.flocks)
    init = container.pid
    if init <= 0:
        return flocks
    try:
        ns = os.stat(f"/proc/{init}/ns/pid").st_ino
    except OSError:
        return flocks
    if ns == os.stat("/proc/self/ns/pid").st_ino:  # pid = "host": processes tell nothing
        return flocks
    return max(flocks, len(live.entered.get(ns, set()) - {init}))


def idle_since(container: Container, user: str) -> float:
    """The later of the last session's end (the sessions file's mtime) and the container's
    last start or stop."""
    times = [epoch(container.started_at), epoch(container.finished_at),
             epoch(container.created)]
    try:
        times.append(os.stat(locks.paths(user)[1]).st_mtime)
    except OSError:
        pass
    return max(t for t in times if t is not None)


def account(name: str, uid_label: str,
            names: dict[int, str] | None = None) -> identity.User | None:
    """The host account the container was made for, or None when it is gone (or the name now
    belongs to someone else: another uid). ``names``: identity.group_name's memo."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    if str(entry.pw_uid) != uid_label:
        return None
    return identity.by_uid(entry.pw_uid, names)


def judge(live: Live, container: Container, config_path: str,
          fallback: schema.Config) -> tuple[str, str, schema.Config]:
    """(CURRENT|STALE|ORPHAN|INVALID, why, the config whose [session] applies)."""
    labels = container.labels
    user = account(labels.get(LABEL_USER, ""), labels.get(LABEL_UID, ""), live.group_names)
    if user is None:
        return ORPHAN, "the user no longer exists", fallback
    try:
        cfg, _ = pipeline.effective(user, config_path)
    except DockershError as exc:
        return INVALID, exc.message, fallback
    wanted = planner.make(cfg, user, os.uname().nodename)
    if wanted.spec.name != container.name:
        return ORPHAN, f"the user's container is now {wanted.spec.name}", cfg
    if ensure.is_stale(live.image_id, container, wanted.session):
        return STALE, "config or image changed since it was created", cfg
    return CURRENT, "", cfg


class Live:
    """What every container's line reads from the host and the engine, read once for all:
    processes entered from outside, shared flocks, image ids by reference, group names."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.entered = entered_processes()
        self.flocks = locks.shared_flocks()
        self.images: dict[str, str | None] = {}
        self.group_names: dict[int, str] = {}

    def image_id(self, ref: str) -> str | None:
        if ref not in self.images:
            self.images[ref] = self.backend.image_id(ref)
        return self.images[ref]


def describe(live: Live, container: Container, config_path: str,
             fallback: schema.Config) -> Managed:
    labels = container.labels
    user = labels.get(LABEL_USER, "")
    verdict, why, cfg = judge(live, container, config_path, fallback)
    sessions = session_count(container, user, live)
    return Managed(
        user=user,
        uid=int(labels.get(LABEL_UID, "-1") or -1),
        container=container.name,
        id=container.id[:12],
        image=container.image,
        state=container.status or "unknown",
        exit="" if container.running else container.describe_exit(),
        sessions=sessions,
        idle_since=None if sessions else idle_since(container, user),
        created=epoch(container.created) or 0.0,
        config=verdict,
        why=why,
        idle_timeout=units.parse_duration(cfg.session.idle_timeout) or 0,
        idle_action=cfg.session.idle_action,
    )


def inventory(backend: Backend, config_path: str, user: str | None = None) -> list[Managed]:
    fallback = pipeline.global_config(config_path)
    found = find(backend, user)
    live = Live(backend)
    return [describe(live, c, config_path, fallback) for c in found]
