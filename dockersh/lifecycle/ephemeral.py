"""``[container] lifetime = "session"``: a fresh container for every session, gone when it ends.

For practice and exam environments, throwaway shells and honeypots: nothing persists but what
the home keeps (and with ``home = "none"`` not even that). Each session (each ssh connection's
session, scp and sftp included) gets a container of its own from the image, with the same
hardening, limits and audit as a persistent one, and no spare.

Removal does not depend on the session ending well: before the container is created, the
monitor forks a **reaper** that holds the read end of a pipe whose only write end the monitor
keeps (close-on-exec: the session's processes never inherit it). However the monitor ends — the
command's exit, a hangup from a vanished client, SIGKILL — the kernel closes that end, the
reaper's read returns, and it removes the container and its generated files. The reaper's and
the monitor's pids and start times are labels on the container, so ``dockersh gc`` removes what
a killed reaper left behind once the session is over, and never a live session's container.
"""

from __future__ import annotations

import fcntl
import os
import time

from dockersh import procstat, records
from dockersh.backend.registry import open_backend
from dockersh.errors import DockershError
from dockersh.labels import LABEL_LIFETIME, LABEL_MONITOR, LABEL_REAPER, LABEL_USER
from dockersh.lifecycle import bindcheck, ensure
from dockersh.login import handoff, locks
from dockersh.paths import STATE_DIR
from dockersh.plan import pipeline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn

    from dockersh.login.identity import User
    from dockersh.login.invocation import Invocation
    from dockersh.plan.sessionplan import SessionPlan

#: How long the reaper keeps trying when the engine is down as the session ends.
REMOVE_TRIES = 60


def process_label(pid: int) -> str:
    """The LABEL_REAPER or LABEL_MONITOR value of a process: "pid:start time"."""
    return f"{pid}:{procstat.fields(pid)[procstat.START_TIME].decode()}"


def alive(label: str) -> bool:
    """Is the process named by a LABEL_REAPER or LABEL_MONITOR value still there?"""
    pid, _, started = label.partition(":")
    try:
        fields = procstat.fields(int(pid)) if pid.isdigit() else []
    except OSError:
        return False
    return (len(fields) > procstat.START_TIME and fields[procstat.STATE] != b"Z"
            and fields[procstat.START_TIME].decode() == started)


def start_reaper(plan: SessionPlan, name: str) -> str:
    """Fork the reaper of container ``name``; its LABEL_REAPER value.

    It also watches the session's stdout: when the client goes away, sshd closes that pipe or
    terminal (POLLERR, POLLHUP), and the reaper removes the container at once, which ends the
    session's processes and so the monitor; a command left running in the container would
    otherwise keep the monitor, and the container, alive.

    It ignores the signals that end a session: logind stops the session's scope (SIGTERM and
    SIGHUP to every process in it, root's too) just as the session ends, when the reaper has
    its work to do."""
    import signal

    read_end, write_end = os.pipe()  # close-on-exec, both
    pid = os.fork()
    if pid == 0:
        try:
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                signal.signal(sig, signal.SIG_IGN)
            os.close(write_end)  # the monitor's alone: its exit is the signal
            watch = os.dup(1)
            os.setsid()  # the SSH session's hangup is not for the reaper
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            for fd in map(int, os.listdir("/proc/self/fd")):
                if fd > 2 and fd not in (read_end, watch):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            wait_for_end(read_end, watch)
            backend = open_backend(plan.backend, plan.engine_host)
            for _ in range(REMOVE_TRIES):
                try:
                    backend.remove(name)
                    break
                except DockershError:
                    time.sleep(1)
            ensure.remove_state(name)
        finally:
            os._exit(0)
    os.close(read_end)
    # write_end stays open, in this process only, until it exits.
    return process_label(pid)


def wait_for_end(monitor: int, session: int) -> None:
    """Until the monitor is gone (its pipe's EOF) or the session's client (its stdout's hangup);
    the session's fd is let go at once either way, so sshd never waits for the reaper."""
    import select

    poller = select.poll()
    poller.register(monitor, select.POLLIN)
    poller.register(session, 0)  # POLLERR and POLLHUP are always reported
    try:
        while True:
            try:
                ready = poller.poll()
            except InterruptedError:
                continue
            if any(fd == monitor or events & (select.POLLERR | select.POLLHUP)
                   for fd, events in ready):
                return
    finally:
        os.close(session)


def run(inv: Invocation, user: User, plan: SessionPlan, environ: Mapping[str, str],
        config_path: str) -> NoReturn:
    config, full = pipeline.full_plan(user, config_path)  # every session is a first login
    name = f"{full.spec.name}-s{os.urandom(5).hex()}"
    state, own_state = f"{STATE_DIR}/{full.spec.name}/", f"{STATE_DIR}/{name}/"
    spec = records.replace(full.spec, name=name, mounts=tuple(
        (own_state + source.removeprefix(state) if source.startswith(state) else source, target,
         read_only) for source, target, read_only in full.spec.mounts))
    bindcheck.check([source for source, _, _ in spec.mounts], user)
    backend = open_backend(plan.backend, plan.engine_host)
    lock = locks.acquire(locks.paths(user.name)[0], fcntl.LOCK_EX, float(plan.lock_timeout))
    try:  # counted and created under the user's lock: sessions at once cannot all get in
        mine = [s for s in backend.list_by_label(f"{LABEL_USER}={user.name}")
                if s.labels.get(LABEL_LIFETIME) == "session"]
        if len(mine) >= config.container.max_containers:
            raise DockershError(f"you have {len(mine)} sessions open, the most allowed at once "
                                "([container] max_containers); end one first")
        reaper = start_reaper(plan, name)
        ensure.create(backend, user, spec, {LABEL_LIFETIME: "session", LABEL_REAPER: reaper,
                                            LABEL_MONITOR: process_label(os.getpid())})
    finally:
        locks.release(lock)
    backend.start(name)
    container = backend.inspect(name)
    if container is None or not container.running:
        raise DockershError(f"container {name} did not stay running")
    plan.name, plan.spare = name, False  # a spare would serve this one session only
    sessions_fd = locks.open_lock(locks.paths(user.name)[1])
    locks.share(sessions_fd)
    handoff.run(backend, plan, user, container, inv.command, inv.args, environ, sessions_fd)
