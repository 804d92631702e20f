"""[container] lifetime = "session" and home = "none", through the real engine (dockersh as
root with its own config: support/ops.py) and the real sshd."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cmd import run
from support.ops import Dockersh, wait_until
from support.sshd import SshdFactory
from support.users import LinuxUser, UserFactory

pytest_plugins = ["support.ops"]
pytestmark = pytest.mark.integration


def containers_of(user: LinuxUser) -> list[str]:
    return run(["docker", "ps", "-aq", "--filter", f"label=dockersh.user={user.name}"]
               ).stdout.split()


def gone(user: LinuxUser) -> None:
    wait_until(lambda: not containers_of(user), 30, f"no container of {user.name} is left")


@pytest.mark.parametrize("mode", ["docker", "nsenter"])
def test_each_session_has_its_own_container_removed_when_it_ends(
    mode: str, dsh: Dockersh, make_user: UserFactory
) -> None:
    user = make_user()
    dsh.write(f'\n[session]\nexec = "{mode}"\n', lifetime="session")
    # The first line of mountinfo is the root: an overlay of each container's own layer.
    sessions = [dsh.spawn(user, "head -1 /proc/self/mountinfo; sleep 60") for _ in range(2)]
    names = []
    for session in sessions:
        assert session.stdout is not None
        names.append(session.stdout.readline().strip())
    assert len(set(names)) == 2 and len(containers_of(user)) == 2
    for session in sessions:  # SIGKILL to the monitor: the reaper still removes its container
        dsh.end(session)
    gone(user)
    # A session that ends by itself, with its status; nothing is left of it either.
    proc = dsh.login(user, "echo hi; exit 7")
    assert (proc.returncode, proc.stdout) == (7, "hi\n")
    gone(user)
    assert not [p for p in Path("/var/lib/dockersh").iterdir() if user.name in p.name]


def test_an_empty_home_of_their_own(dsh: Dockersh, make_user: UserFactory) -> None:
    user = make_user()
    (user.home / "host-secret").write_text("host")
    dsh.write(lifetime="session", home="none")
    proc = dsh.login(user, 'ls -A "$HOME"; touch "$HOME/inside"; stat -c %u "$HOME"; '
                           'printf "#!/bin/sh\\necho ran\\n" > ~/x; chmod +x ~/x; ~/x')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{user.uid}\nran\n"  # empty, theirs, and scripts run from it
    assert sorted(p.name for p in user.home.iterdir() if not p.name.startswith(".")) == \
        ["host-secret"]


def test_gc_removes_what_a_killed_reaper_left(dsh: Dockersh, make_user: UserFactory) -> None:
    user = make_user()
    dsh.write(lifetime="session")
    session = dsh.spawn(user, "echo up; sleep 60")
    assert session.stdout is not None and session.stdout.readline() == "up\n"
    [cid] = containers_of(user)
    reaper = run(["docker", "inspect", "-f", '{{index .Config.Labels "dockersh.reaper"}}',
                  cid]).stdout.strip()
    os.kill(int(reaper.split(":")[0]), signal.SIGKILL)
    dsh.end(session)
    time.sleep(1)
    assert containers_of(user) == [cid]  # nobody removed it: a crash left it behind
    proc = dsh("gc")
    assert proc.returncode == 0, proc.stderr
    assert f"removed {cid[:12]} ({user.name}'s session container" in proc.stdout
    assert containers_of(user) == []


def test_a_client_that_vanishes_leaves_nothing(
    dockersh_config: Callable[..., Path], test_image: str, sshd: SshdFactory,
    make_user: UserFactory
) -> None:
    user = make_user()
    dockersh_config(f'[container]\nimage = "{test_image}"\npull = "never"\nshell = "/bin/sh"\n'
                    'lifetime = "session"\n')
    server = sshd()
    client = subprocess.Popen(server.ssh_argv(user, "echo up; sleep 60"),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    try:
        assert client.stdout is not None and client.stdout.readline() == b"up\n"
        assert len(containers_of(user)) == 1
    finally:
        client.kill()  # abruptly: no channel close, the TCP connection just goes
        client.wait()
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
