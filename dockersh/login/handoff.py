"""Handing the session to the container, under a monitor that outlives the handoff.

Two ways in, one monitor. ``docker``: this process runs the exec through the Engine API
(attach.py) and moves the bytes. ``nsenter``: a forked child (or the container's spare) enters the
container and execs the shell; a session with a terminal gets a pty of the container's own (so
``tty`` names it there), and a recorded one (``[audit] record``) pipes when it has none; this
process copies their bytes (enter/relay.py), telling the recording (login/recording.py). Other
sessions inherit the SSH session's stdin, stdout and stderr untouched. Either way the
monitor ignores the terminal's SIGINT/SIGQUIT (they are for the session), passes hangups on,
writes the audit records, says in one line why a session died with its container, and exits
with the session's exact status (re-raising a fatal signal, so sshd reports it).
"""

from __future__ import annotations

import os
import sys
import time

from dockersh import passedon, procstat
from dockersh.backend.base import Unreachable
from dockersh.errors import DockershError
from dockersh.labels import LABEL_LOCALES, LABEL_SHELL
from dockersh.login import locales
from dockersh.paths import SSH_VARIABLES

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    import signal as _signal
    from collections.abc import Callable, Mapping
    from typing import Any, NoReturn

    from dockersh.backend.base import Backend, Container
    from dockersh.login.identity import User
    from dockersh.login.recording import Recording
    from dockersh.plan.sessionplan import SessionPlan
else:
    import _signal  # signal without the enum import (8 ms)

def glob_match(pattern: str, name: str) -> bool:
    """``*`` and ``?`` as in fnmatch, without importing re on the login path.

    Iterative, at most len(pattern) * len(name) steps: a user's own env_pass pattern such as
    "*a*a*a*a*a*a*a*a*a*a*a*X" made the recursive version spin a root process for minutes.
    """
    p = n = 0
    star, mark = -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, n  # remember where the star was; first let it match nothing
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", name[n]):
            p += 1
            n += 1
        elif star >= 0:
            mark += 1  # let the last star take one more character, and try again from there
            p, n = star + 1, mark
        else:
            return False
    return pattern[p:].strip("*") == ""


def session_env(plan: SessionPlan, shell: str, environ: Mapping[str, str],
                tty: bool) -> list[tuple[str, str]]:
    """Fixed variables, sshd's own as a plain account has them, then the ones the admin lets
    through from the SSH session. SSH_TTY is never the variable's value (a client may send one
    where sshd sets none): the exec names the session's terminal inside the container."""
    env = dict(plan.env)
    env["SHELL"] = shell
    for name, value in environ.items():
        if name not in env and "\0" not in value and (name in SSH_VARIABLES or any(
            glob_match(p, name) for p in plan.env_pass
        )):
            env[name] = value
    env.pop("SSH_TTY", None)
    if tty and env.get("TERM", "unknown") == "unknown":  # sudo says "unknown" for none
        env["TERM"] = "xterm"
    return list(env.items())


def shell_argv(shell: str, command: str | None, args: tuple[str, ...]) -> list[str]:
    return [shell, "-l"] if command is None else [shell, "-c", command, *args]


def run(backend: Backend, plan: SessionPlan, user: User, container: Container,
        command: str | None, args: tuple[str, ...], environ: Mapping[str, str],
        sessions_fd: int, shell: str = "") -> NoReturn:
    """The session, under its monitor; ``shell``: a target's (else the container's label)."""
    shell = shell or container.labels.get(LABEL_SHELL) or "/bin/sh"
    tty = os.isatty(0) and os.isatty(1)
    env = locales.fit(session_env(plan, shell, environ, tty), container.labels.get(LABEL_LOCALES))
    if environ.get("SSH_AUTH_SOCK") and plan.forward_agent:  # ssh -A
        from dockersh.login import agent

        inside = agent.forward(environ["SSH_AUTH_SOCK"], user, container, plan)
        if inside is not None:
            env = [(k, v) for k, v in env if k != "SSH_AUTH_SOCK"] + [("SSH_AUTH_SOCK", inside)]
    argv = shell_argv(shell, command, args)
    if plan.exec == "nsenter" and not backend.can_nsenter:
        raise DockershError(f'[session] exec = "nsenter" cannot enter {backend.name} '
                            'containers; use exec = "docker"')
    if command is None:
        for line in (plan.banner, plan.record.get("banner") or ""):
            if line:
                print(line, file=sys.stderr, flush=True)
    for sig in (_signal.SIGINT, _signal.SIGQUIT):
        _signal.signal(sig, _signal.SIG_IGN)
    if plan.exec != "nsenter":
        refuse_non_utf8(argv, env)
    # Before anything starts: a session whose start (or recording) cannot be written does not.
    record, recording = start_record(plan, user, container, command, environ, tty,
                                     dict(env).get("TERM", ""), shell)
    began = time.time()
    failure = ""
    if user.uid != 0:  # the login's own ids: a target's exec ids may be root or another's
        passedon.start(user.uid, user.gid)
    try:
        if plan.exec == "nsenter":
            code, failure = enter(plan, container, container_env(container, env), argv,
                                  recording)
        else:
            code = docker_exec(backend, plan, container, argv, env, tty, recording)
    except DockershError as exc:  # failed mid-way (the engine, the way in): still end the record
        failure, code = exc.message, 125
    if recording is not None:
        record.update(recording.close())
    finish(plan, container, record, code, began, sessions_fd, failure)


def docker_exec(backend: Backend, plan: SessionPlan, container: Container, argv: list[str],
                env: list[tuple[str, str]], tty: bool, recording: Recording | None) -> int:
    """docker mode: sshd's pipes (a recorded session: pipes the monitor copies) handed to the
    exec when none of them is a terminal and the container has the helper, else the engine's
    stream."""
    if not any(os.isatty(fd) for fd in (0, 1, 2)):
        from dockersh.backend.docker import handover

        if handover.usable(container, plan.user):
            relay = None
            if recording is not None:
                from dockersh.enter.relay import Pipes

                relay = Pipes()
            return handover.run(backend, container, argv, plan.uid, plan.gid, plan.home, env,
                                relay, recording)
    from dockersh.backend.docker import attach

    return attach.run(backend, container.id, argv, f"{plan.uid}:{plan.gid}", plan.home, env,
                      tty, recording)


def refuse_non_utf8(argv: list[str], env: list[tuple[str, str]]) -> None:
    """docker mode: the Engine API carries text as JSON, which is UTF-8, so a byte that is not
    (kept by Python as a surrogate) would reach the container as U+FFFD: another command.
    Refused in one line instead; nsenter mode passes the bytes exactly."""
    for what, text in [("the command", " ".join(argv)), *((f"variable {k}", v) for k, v in env)]:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise DockershError(f"{what} is not valid UTF-8, which docker mode cannot pass "
                                'exactly; use UTF-8 (or [session] exec = "nsenter")') from None


def container_env(container: Container, env: list[tuple[str, str]]) -> dict[str, str]:
    """nsenter mode's environment: the container's own (image and config), then the session's
    (docker exec merges them the same way)."""
    base = dict(v.split("=", 1) for v in container.env if "=" in v)
    return {**base, **dict(env)}


def enter(plan: SessionPlan, container: Container, env: dict[str, str],
          argv: list[str], recording: Recording | None = None) -> tuple[int, str]:
    """nsenter mode: through the container's spare when there is one (and no terminal but the
    container's own), else directly (then leaving a spare for the next login). A session with a
    terminal gets a pty of the container's, a recorded one without pipes (relay.py: both go
    through the spare too), and its bytes are copied until it ends. Returns the exit code and
    what went wrong (or "")."""
    tty = os.isatty(0) and os.isatty(1)
    terminal = tty or any(os.isatty(fd) for fd in (0, 1, 2))
    relay = None
    if tty or recording is not None:
        from dockersh.enter import relay as relays

        relay = relays.make(tty, container.pid, container.id, plan.uid)
        told = relays.UNRECORDED if recording is None else recording
    if plan.spare and (tty or not terminal):
        from dockersh.enter import spare

        forked = spare.begin(container.id, plan.uid, plan.gid, plan.groups, argv, env,
                             plan.home, relay.child_fds if relay else (0, 1, 2))
        if forked is not None:
            passedon.forward_to(forked.forward)
            if relay is not None:
                relay.started()
                if not forked.failure:
                    relay.run(told, forked.sock.fileno())  # readable: its exit status
            return forked.wait(), forked.failure
    from dockersh.enter import nsenter

    target = nsenter.Target(container, plan, env, argv)
    nsenter.prepare_pid_namespace(target)

    def become() -> None:
        if relay is not None:
            relay.attach()
        if not tty:  # a group of its own: sshd's signal requests come through the catcher
            os.setpgid(0, 0)
        nsenter.enter(target)

    child, pidfd = spawn(become)
    if relay is not None:
        relay.started()
    if plan.spare:
        from dockersh.enter import spare

        spare.start(target, container.id)
    if relay is not None:
        relay.run(told, pidfd)
    status = os.waitpid(child, 0)[1]
    passedon.forward_to(None)
    os.close(pidfd)
    return os.waitstatus_to_exitcode(status), ""


def spawn(enter: Callable[[], None]) -> tuple[int, int]:
    """Fork the child that becomes the session; hangups and the client's signals reach it
    through the monitor (passedon), by a pidfd: never another process that got its pid.
    Its pid and that pidfd."""
    from dockersh.enter.nsenter import fork_child

    child = fork_child(enter)
    pidfd = os.pidfd_open(child)

    passedon.forward_to(lambda signum: passedon.send(pidfd, signum))
    return child, pidfd


def start_record(plan: SessionPlan, user: User, container: Container, command: str | None,
                 environ: Mapping[str, str], tty: bool, term: str,
                 shell: str) -> tuple[dict[str, Any], Recording | None]:
    """The session-start record, written; and the session's recording, made first when it is
    recorded (its path goes in the records)."""
    from dockersh.login import audit

    record = audit.session_record(plan, user, container, command, environ, os.getpid())
    recording = None
    if plan.record:
        from dockersh.login import recording as recordings

        recording = recordings.create(plan.record, record["session"], tty, command,
                                      {"TERM": term, "SHELL": shell})
        record["recording"] = recording.path
    try:
        audit.write(plan, {**record, "event": "session-start",
                           "latency": round(audit.since_start(), 3)})
    except DockershError:
        if recording is not None:
            recording.close()
        raise
    return record, recording


def finish(plan: SessionPlan, container: Container, record: dict[str, Any],
           code: int, began: float, sessions_fd: int, failure: str = "") -> NoReturn:
    """End the record, say in one line why a failed session ended (the container's or the
    engine's fate, else ``failure``), and exit as the session did."""
    from dockersh.login import audit

    audit.write(plan, {**record, "event": "session-end", "exit": code,
                          "duration": round(time.time() - began, 3)})
    try:
        os.utime(sessions_fd)  # "idle since" for ls and gc
    except OSError:
        pass
    if code != 0:
        cause = why_ended(plan, container)
        line = f"the session ended: {cause}" if cause else failure
        if line:
            os.write(2, f"dockersh: {line}\n".encode())
    sys.stdout.flush()
    if code < 0:  # killed by a signal: die the same way, so sshd reports exit-signal
        try:
            if -code != _signal.SIGKILL:  # SIGKILL's disposition cannot be set (EINVAL)
                _signal.signal(-code, _signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        except (OSError, ValueError):  # one Python may not set (32, 33: libc's own)
            pass
        code = 128 - code
    os._exit(code)


def why_ended(plan: SessionPlan, container: Container) -> str | None:
    """After a session failed: one line when the engine or the container went away under it
    (the engine restarted, the container killed, OOM-killed or removed), else None.

    The container's init still alive means the container is fine: no engine call. Otherwise the
    engine is asked, for a few seconds, since it records the end a moment after it happens.
    """
    if init_alive(container.pid):
        return None
    from dockersh.backend.registry import open_backend

    backend = open_backend(plan.backend, plan.engine_host, timeout=5)
    engine = backend.name.capitalize()
    for _ in range(30):
        try:
            now = backend.inspect(container.id)
        except Unreachable:
            return f"the {engine} engine is not reachable (restarted?); log in again once it " \
                   "is back"
        except DockershError as exc:
            return f"the {engine} engine cannot tell what became of your container " \
                   f"({exc.message})"
        if now is None:
            return "your container was removed; the next login creates it again"
        if not now.running:
            return f"your container stopped ({now.describe_exit()}); the next login starts " \
                   "it again"
        if now.started_at != container.started_at:
            return "your container was restarted"
        time.sleep(0.1)
    return "your container stopped"


PF_EXITING = 0x4


def init_alive(pid: int) -> bool:
    """The container's init runs and is not exiting. An exiting init of a pid namespace waits
    for the namespace's other processes to be reaped, sessions included (their parents are
    outside it), so it still exists when the monitor looks: its PF_EXITING flag tells."""
    try:
        fields = procstat.fields(pid)
        return (pid > 0 and fields[procstat.STATE] != b"Z"
                and not int(fields[procstat.FLAGS]) & PF_EXITING)
    except (OSError, IndexError, ValueError):
        return False
