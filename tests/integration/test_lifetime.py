"""[container] lifetime = "session" and home = "none": sessions through the real sshd and the
installed dockersh, in both exec modes; the bound on sessions at once with dockersh as root and
its own config (support/ops.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support import engine
from support.cmd import run
from support.images import BUSYBOX_IMAGE
from support.ops import STATE_DIR, Dockersh, wait_until
from support.sshd import SshdFactory, SshServer
from support.users import DOCKERSH_SHELL, LinuxUser, UserFactory

pytest_plugins = ["support.ops"]
pytestmark = pytest.mark.integration

MODES = pytest.mark.parametrize("mode", ["docker", "nsenter"])


def containers_of(user: LinuxUser) -> list[str]:
    return run(["docker", "ps", "-aq", "--filter", f"label=dockersh.user={user.name}"]
               ).stdout.split()


def gone(user: LinuxUser) -> None:
    wait_until(lambda: not containers_of(user), 30, f"no container of {user.name} is left")
    # The reaper removes the container, then its state: a moment apart.
    wait_until(lambda: not [p for p in STATE_DIR.iterdir() if user.name in p.name], 10,
               f"no state of {user.name} is left")


def label(container: str, name: str) -> str:
    return run(["docker", "inspect", "-f", f'{{{{index .Config.Labels "{name}"}}}}', container]
               ).stdout.strip()


@pytest.fixture
def server(dockersh_config: Callable[..., Path], test_image: str,
           sshd: SshdFactory) -> Callable[..., SshServer]:
    """server(mode, home=...): the sshd, with per-session containers in that exec mode."""

    def configure(mode: str, home: str = "bind") -> SshServer:
        dockersh_config(f'{engine.CONFIG}[container]\nimage = "{BUSYBOX_IMAGE}"\n'
                        f'pull = "never"\nshell = "/bin/sh"\nlifetime = "session"\n'
                        f'home = "{home}"\n\n[session]\nexec = "{mode}"\n')
        return sshd()

    return configure


def started(session: subprocess.Popen[bytes]) -> bytes:
    """The session's first line, once it is up."""
    assert session.stdout is not None
    line = session.stdout.readline()
    assert line, session.communicate(timeout=30)[1]
    return line


def kill(session: subprocess.Popen[bytes]) -> None:
    if session.poll() is None:
        session.kill()
    session.communicate(timeout=30)


@MODES
def test_each_session_has_its_own_container_removed_when_it_ends(
    mode: str, server: Callable[..., SshServer], make_user: UserFactory
) -> None:
    user = make_user()
    ssh = server(mode)
    # The first line of mountinfo is the root: an overlay of each container's own layer.
    sessions = [ssh.spawn(user, "head -1 /proc/self/mountinfo; cat >/dev/null; exit 5")
                for _ in range(2)]
    try:
        roots = [started(session) for session in sessions]
        assert roots[0] != roots[1] and len(containers_of(user)) == 2
        for session in sessions:  # the client's EOF: each session ends by itself
            assert session.communicate(timeout=60)[0] == b"" and session.returncode == 5
    finally:
        for session in sessions:
            kill(session)
    gone(user)


@MODES
def test_a_killed_monitor_leaves_nothing(
    mode: str, server: Callable[..., SshServer], make_user: UserFactory
) -> None:
    """kill -9 of the session's dockersh (the monitor: the reaper's parent)."""
    user = make_user()
    session = server(mode).spawn(user, "echo up; sleep 60")
    try:
        assert started(session) == b"up\n"
        [container] = containers_of(user)
        reaper = int(label(container, "dockersh.reaper").split(":")[0])
        monitor = int(Path(f"/proc/{reaper}/stat").read_bytes().rpartition(b")")[2].split()[1])
        assert label(container, "dockersh.monitor").startswith(f"{monitor}:")
        assert b"dockersh" in Path(f"/proc/{monitor}/cmdline").read_bytes()
        os.kill(monitor, signal.SIGKILL)
        gone(user)
        session.communicate(timeout=30)  # the client is let go too
    finally:
        kill(session)


@MODES
@pytest.mark.parametrize("tty", [False, True], ids=["pipes", "tty"])
def test_a_client_that_vanishes_leaves_nothing(
    mode: str, tty: bool, server: Callable[..., SshServer], make_user: UserFactory
) -> None:
    user = make_user()
    session = server(mode).spawn(user, "echo up; sleep 60", tty=tty)
    try:
        assert started(session).rstrip(b"\r\n") == b"up"
        assert len(containers_of(user)) == 1
    finally:
        kill(session)  # kill -9 of the client: no channel close, the TCP connection just goes
    gone(user)


@MODES
def test_an_empty_home_of_their_own(
    mode: str, server: Callable[..., SshServer], make_user: UserFactory
) -> None:
    user = make_user()
    (user.home / "host-secret").write_text("host")
    proc = server(mode, home="none").ssh(
        user, 'ls -A "$HOME"; cd; touch inside; stat -c %u .; '
              'printf "#!/bin/sh\\necho ran\\n" > x; chmod +x x; ./x; cat ~/host-secret')
    # Empty (not even .ssh), theirs, scripts run from it; the host's file is not there.
    assert (proc.returncode, proc.stdout.decode()) == (1, f"{user.uid}\nran\n"), proc.stderr
    assert proc.stderr == f"cat: can't open '{user.home}/host-secret': No such file or " \
        "directory\n".encode()
    assert sorted(p.name for p in user.home.iterdir() if not p.name.startswith(".")) == \
        ["host-secret"]
    gone(user)


def test_the_reaper_outlives_the_end_of_the_session_scope(
    server: Callable[..., SshServer], make_user: UserFactory
) -> None:
    """logind stops a session's scope with SIGTERM and SIGHUP to every process in it (the
    reaper too) as the session ends: the reaper still removes the container."""
    user = make_user()
    session = server("docker").spawn(user, "echo up; cat >/dev/null")
    try:
        assert started(session) == b"up\n"
        [container] = containers_of(user)
        reaper = int(label(container, "dockersh.reaper").split(":")[0])
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
            os.kill(reaper, sig)
        assert session.communicate(timeout=60)[0] == b"" and session.returncode == 0
    finally:
        kill(session)
    gone(user)


def test_gc_removes_what_a_killed_reaper_left_once_the_session_is_over(
    server: Callable[..., SshServer], make_user: UserFactory
) -> None:
    user = make_user()
    session = server("docker").spawn(user, 'echo up; while read l; do echo "got $l"; done')
    try:
        assert started(session) == b"up\n"
        [container] = containers_of(user)
        os.kill(int(label(container, "dockersh.reaper").split(":")[0]), signal.SIGKILL)
        # The session goes on: gc leaves its container alone while its monitor lives.
        proc = run([DOCKERSH_SHELL, "gc"])
        assert container[:12] not in proc.stdout
        assert session.stdin is not None and session.stdout is not None
        session.stdin.write(b"more\n")
        session.stdin.flush()
        assert session.stdout.readline() == b"got more\n"
        assert session.communicate(timeout=60)[0] == b"" and session.returncode == 0
    finally:
        kill(session)
    assert containers_of(user) == [container]  # nobody removed it: the reaper was gone
    proc = run([DOCKERSH_SHELL, "gc"])
    assert f"removed {container[:12]} ({user.name}'s session container" in proc.stdout
    gone(user)


def test_sessions_at_once_are_bounded(dsh: Dockersh, make_user: UserFactory) -> None:
    """One user cannot start containers without end ([container] max_containers)."""
    user = make_user()
    dsh.write(lifetime="session", max_containers=2)
    sessions = [dsh.spawn(user, "echo up; sleep 60") for _ in range(2)]
    try:
        for session in sessions:
            assert session.stdout is not None and session.stdout.readline() == "up\n"
        proc = dsh.login(user, "echo never")
        assert (proc.returncode, proc.stdout) == (125, "")
        assert proc.stderr == ("dockersh: you have 2 sessions open, the most allowed at once "
                               "([container] max_containers); end one first\n")
    finally:
        for session in sessions:
            dsh.end(session)
    gone(user)
