"""The admin verbs that look at and act on users' containers: ls, start, stop, restart, rm, gc.

Every change to a user's container happens with the user's lock held, as a login holds it, so
a login and an admin verb never interleave. gc checks for live sessions only after taking the
lock: a login racing gc either shared the sessions lock first (gc leaves the container alone)
or waits for gc and finds the container stopped, which it starts again.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dockersh.admin import inventory, leftovers
from dockersh.admin.inventory import Managed
from dockersh.config import schema, units
from dockersh.enter import spare
from dockersh.errors import DockershError, escaped
from dockersh.labels import (
    LABEL_LIFETIME,
    LABEL_MONITOR,
    LABEL_PROBE,
    LABEL_REAPER,
    LABEL_UID,
    LABEL_USER,
)
from dockersh.lifecycle import ensure, pulling
from dockersh.login import locks
from dockersh.paths import LOCK_DIR
from dockersh.plan import naming, pipeline

if TYPE_CHECKING:
    from dockersh.backend.base import Backend, Container

STOP_TIMEOUT = 10  # seconds a container's processes get between SIGTERM and SIGKILL
COLUMNS = ("USER", "CONTAINER", "IMAGE", "STATE", "SESSIONS", "IDLE", "AGE", "CONFIG")


def since(seconds: float) -> str:
    """A duration as people read it: 45s, 12m, 3h05m, 2d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def lock_timeout(config_path: str) -> float:
    cfg = pipeline.global_config(config_path)
    return float(units.parse_duration(cfg.docker.lock_timeout) or 0)


@contextmanager
def user_locked(user: str, timeout: float) -> Iterator[int]:
    """Hold the user's lock exclusively, as a login does; yield the sessions file's fd."""
    lock_path, sessions_path = locks.paths(user)
    lock_fd = locks.acquire(lock_path, fcntl.LOCK_EX, timeout)
    try:
        sessions_fd = locks.open_lock(sessions_path)
        try:
            yield sessions_fd
        finally:
            locks.release(sessions_fd)
    finally:
        locks.release(lock_fd)


# --- ls ---------------------------------------------------------------------------------------


def row(m: Managed, now: float) -> tuple[str, ...]:
    idle = "-" if m.idle_since is None else since(now - m.idle_since)
    return (m.user, m.container, m.image, m.state, str(m.sessions), idle,
            since(now - m.created), m.config)


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                   + "\n" for r in rows)


def ls(config_path: str, as_json: bool) -> int:
    backend = inventory.backend_for(config_path)
    managed = inventory.inventory(backend, config_path)
    now = time.time()
    if as_json:
        print(json.dumps([m.to_json(now) for m in managed], indent=2))
    elif managed:
        sys.stdout.write(table([COLUMNS, *(row(m, now) for m in managed)]))
    else:
        print("no dockersh containers", file=sys.stderr)
    if not as_json and (in_targets := target_sessions()):
        sys.stdout.write("\n" + table([("TARGET", "USER", "SESSIONS"), *in_targets]))
    return 0


def target_sessions() -> list[tuple[str, str, str]]:
    """Who is in which target now: the target sessions' flock files (login/target.py)."""
    found = []
    try:
        names = sorted(os.listdir(LOCK_DIR))
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith("@target@") and name.endswith(".sessions"):
            target, _, user = name.removeprefix("@target@").removesuffix(".sessions").partition("@")
            count = locks.holders(f"{LOCK_DIR}/{name}")
            if count:
                found.append((naming.unescape(target), naming.unescape(user), str(count)))
    return found


# --- stop, restart, rm --------------------------------------------------------------------------


def containers_of(backend: Backend, user: str) -> list[Container]:
    found = inventory.find(backend, user)
    if not found:
        raise DockershError(f"{user} has no dockersh container")
    return found


def ending(backend: Backend, container: Container, user: str) -> str:
    """ ", ending N live session(s)" when stopping it ends sessions."""
    count = inventory.session_count(container, user, inventory.Live(backend))
    return f", ending {count} live session{'s' * (count != 1)}" if count else ""


def start(config_path: str, names: list[str]) -> int:
    """Make each user's container current and running, as their login would, ahead of it (a
    class logging in at once: 50 first logins cost dockerd 50 creates and starts in the same
    minute, 50 warm ones only the execs). Users whose sessions have no container of their own
    (targets, a container per session) are passed over; a failure is one line and the next
    user goes on; exit status 1 when any failed."""
    from dockersh.login import identity, session
    from dockersh.paths import GROUP

    failed = 0
    for name in dict.fromkeys(names):  # once each, in the order given
        try:
            user = identity.by_name(name)
            if user.uid == 0:
                raise DockershError("root has no dockersh container")
            if GROUP not in user.group_names:
                raise DockershError(f"not in group {GROUP}")
            plan = session.load_plan(user, config_path)
            if not plan.in_own_container():
                print(f"{escaped(user.name)}: no container of their own (their sessions go to "
                      f"{'a target' if plan.to_target() else 'a container each'})")
                continue
            _, container, sessions_fd = session.own_container(user, plan, config_path)
            locks.release(sessions_fd)
            print(f"{container.name} running")
        except DockershError as exc:
            print(f"dockersh: {escaped(name)}: {escaped(str(exc))}", file=sys.stderr, flush=True)
            failed += 1
    return 1 if failed else 0


def stop(config_path: str, user: str) -> int:
    backend = inventory.backend_for(config_path)
    with user_locked(user, lock_timeout(config_path)):
        for container in containers_of(backend, user):
            name = container.name
            if not container.running:
                print(f"{name} is not running")
                continue
            note = ending(backend, container, user)
            backend.stop(name, STOP_TIMEOUT)
            print(f"stopped {name}{note}")
    return 0


def restart(config_path: str, user: str) -> int:
    backend = inventory.backend_for(config_path)
    with user_locked(user, lock_timeout(config_path)):
        for container in containers_of(backend, user):
            name = container.name
            note = ending(backend, container, user)
            account = inventory.account(user, container.labels.get(LABEL_UID, ""))
            if account is not None:  # its passwd and group may be gone (install.sh --uninstall)
                ensure.restore_identity_files(backend, account, config_path, container)
            backend.restart(name, STOP_TIMEOUT)
            print(f"restarted {name}{note}")
    stale = [m for m in inventory.inventory(backend, config_path, user)
             if m.config == inventory.STALE]
    for m in stale:
        print(f"note: {m.container} was made from an older config; `dockersh rm {user}` makes "
              "the next login create it anew", file=sys.stderr)
    return 0


def remove_container(backend: Backend, name: str) -> None:
    backend.remove(name)
    ensure.remove_state(name)


def rm(config_path: str, user: str) -> int:
    backend = inventory.backend_for(config_path)
    with user_locked(user, lock_timeout(config_path)):
        for container in containers_of(backend, user):
            name = container.name
            note = ending(backend, container, user)
            remove_container(backend, name)
            print(f"removed {name}{note} (the home directory is kept)")
    return 0


# --- gc -----------------------------------------------------------------------------------------


def decide(m: Managed, idle: int | None, now: float) -> tuple[str, str] | None:
    """("stop" | "remove", why), or None to leave the container alone.

    ``idle`` is --idle in seconds (0: any idle container); without it each user's
    ``[session] idle_timeout`` applies, where 0 means never.
    """
    if m.sessions or m.idle_since is None:
        return None
    if m.config == inventory.ORPHAN:
        return "remove", m.why
    timeout = m.idle_timeout if idle is None else idle
    idle_for = now - m.idle_since
    if (idle is None and timeout == 0) or idle_for <= timeout:
        return None
    why = f"idle for {since(idle_for)}, over {since(timeout)}"
    if m.idle_action == "remove":
        return "remove", why
    if m.state in ("running", "paused", "restarting"):
        return "stop", why
    return None


def act(backend: Backend, action: str, name: str) -> None:
    if action == "remove":
        remove_container(backend, name)
    else:
        backend.stop(name, STOP_TIMEOUT)


def act_locked(backend: Backend, config_path: str, m: Managed, idle: int | None,
               timeout: float) -> tuple[str, str] | None:
    """Under the user's lock, look again and act if it still holds; what was done."""
    with user_locked(m.user, timeout) as sessions_fd:
        if not locks.try_exclusive(sessions_fd):
            return None  # a session started meanwhile: the login won
        container = backend.inspect(m.id)
        if container is None:
            return None
        fresh = inventory.describe(inventory.Live(backend), container, config_path,
                                   pipeline.global_config(config_path))
        decision = decide(fresh, idle, time.time())
        if decision is not None:
            act(backend, decision[0], fresh.container)
        return decision


#: A probe container lives for a fraction of a second; an older one was left by a killed login.
PROBE_MAX_AGE = 600


def remove_stale_probes(backend: Backend, dry_run: bool) -> None:
    for item in backend.list_by_label(LABEL_PROBE):
        if time.time() - item.created < PROBE_MAX_AGE:
            continue
        if dry_run:
            print(f"would remove {item.id[:12]} (an image probe left by a killed login)")
        else:
            backend.remove(item.id)
            print(f"removed {item.id[:12]} (an image probe left by a killed login)")


def remove_orphaned_sessions(backend: Backend, dry_run: bool) -> None:
    """Per-session containers whose reaper is gone (killed, or the host crashed) and whose
    session is over (its monitor gone): while the monitor lives, the session goes on."""
    from dockersh.lifecycle import ephemeral

    for item in backend.list_by_label(f"{LABEL_LIFETIME}=session"):
        if any(ephemeral.alive(item.labels.get(label, "")) for label in (LABEL_REAPER,
                                                                         LABEL_MONITOR)):
            continue
        what = f"{item.id[:12]} ({item.labels.get(LABEL_USER, '?')}'s session container, whose " \
               "session ended without removing it)"
        if dry_run:
            print(f"would remove {what}")
            continue
        found = backend.inspect(item.id)
        if found is not None:
            remove_container(backend, found.name)
            print(f"removed {what}")


def gc(config_path: str, idle: int | None, dry_run: bool, users: list[str]) -> int:
    """Stop or remove what is idle or orphaned (only ``users``' containers when given); with
    no ``users`` also image probes a killed login left behind, the files kept for removed
    containers and recordings past [audit] keep, and write the metrics textfile."""
    backend = inventory.backend_for(config_path)
    timeout = lock_timeout(config_path)
    if not users:
        remove_stale_probes(backend, dry_run)
        remove_orphaned_sessions(backend, dry_run)
    failed = 0
    for m in inventory.inventory(backend, config_path):
        if users and m.user not in users:
            continue
        decision = decide(m, idle, time.time())
        if decision is None:
            continue
        if dry_run:
            print(f"would {decision[0]} {m.container} ({m.user}): {decision[1]}")
            continue
        try:
            done = act_locked(backend, config_path, m, idle, timeout)
        except DockershError as exc:
            print(f"dockersh: gc: {m.container}: {exc.message}", file=sys.stderr)
            failed += 1
            continue
        if done is not None:
            verb = "stopped" if done[0] == "stop" else "removed"
            print(f"{verb} {m.container} ({m.user}): {done[1]}")
    if not users:
        failed += after_sweep(backend, config_path, dry_run)
    return 1 if failed else 0


def after_sweep(backend: Backend, config_path: str, dry_run: bool) -> int:
    """A whole gc's last steps: the state of what is gone, recordings past [audit] keep, and
    the metrics textfile (after the removals, so that it counts what is left). 1 on failure."""
    from dockersh.admin import recordings

    config = pipeline.global_config(config_path)
    if not dry_run:
        sweep(backend)
    recordings.apply_keep(config, dry_run)
    if dry_run:
        return 0
    from dockersh.admin import metrics  # prometheus_client: 57 ms, for the textfile only

    try:
        metrics.write_textfile(config)
    except DockershError as exc:
        print(f"dockersh: gc: {exc.message}", file=sys.stderr)
        return 1
    return 0


def sweep(backend: Backend) -> None:
    """Remove the files kept for containers and users that are gone (after the removals above)."""
    listed = backend.list_by_label(LABEL_USER)
    spare.sweep({item.id for item in listed})
    state = leftovers.sweep_state({name for item in listed for name in item.names})
    users = leftovers.sweep_users({item.labels.get(LABEL_USER, "") for item in listed})
    if state or users:
        print(f"removed the state of {state} containers and {users} users that are gone")


# --- pull ---------------------------------------------------------------------------------------


def configured_images(config_path: str, everything: bool) -> list[str]:
    """The global image; with ``everything`` also those of [groups.*], [users.*] and the
    aliases users may choose ([user_config] images)."""
    base, groups, users = schema.validate_global(pipeline.read_global(config_path), config_path)
    cfg = schema.build(schema.merge([base]))
    images = [cfg.container.image]
    if everything:
        for layer in (*groups.values(), *users.values()):
            if "image" in layer.get("container", {}):
                images.append(str(layer["container"]["image"]))
        images += [ref for _, ref in cfg.user_config.images]
    return list(dict.fromkeys(images))


def pull(config_path: str, everything: bool) -> int:
    backend = inventory.backend_for(config_path)
    images = configured_images(config_path, everything)
    results = [pulling.pull_one(backend, image) for image in images]
    return 0 if all(results) else 1
