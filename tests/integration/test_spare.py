"""nsenter mode's spare: logins (with a terminal too) are forked by a process already inside the
container. Each test checks what the user gets against a direct entry, or what the spare holds,
from the host side, with the real executable through sudo."""

from __future__ import annotations

import _socket
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest
from conftest import Dockersh, user_argv
from support.install import DEFAULT_TEST_CONFIG
from support.ops import runs, wait_until
from support.users import LinuxUser

pytestmark = pytest.mark.integration

SPARES = Path("/run/dockersh/spares")
SECCOMP = Path("/run/dockersh/seccomp")
#: What a session is: identity, privileges, cgroups, namespaces, working directory, environment.
PROBE = (
    "id; pwd; grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp.*)' "
    "/proc/$$/status; "
    "cat /proc/$$/cgroup; for n in mnt pid uts ipc net cgroup; do readlink /proc/$$/ns/$n; done; "
    "env | grep -v -E '^(PWD|SHLVL|_)=' | sort"
)
PPID = "grep PPid /proc/$$/status"


@pytest.fixture
def nsenter(dockersh_config: Any) -> Callable[[bool], None]:
    """nsenter mode, with (True) or without (False) the spare."""

    def configure(spare: bool) -> None:
        dockersh_config(f'[session]\nexec = "nsenter"\nspare = {str(spare).lower()}\n'
                        + DEFAULT_TEST_CONFIG)

    configure(True)
    return configure


def via_spare(dockersh: Dockersh, user: LinuxUser) -> bool:
    """Whether a login now goes through the spare: a shell forked by it has a parent inside the
    container; one entered directly has its monitor outside (PPid 0)."""
    proc = dockersh(user, ["-c", PPID])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split() != [b"PPid:", b"0"]


def await_spare(dockersh: Dockersh, user: LinuxUser) -> None:
    wait_until(lambda: via_spare(dockersh, user), 20, "a login through the spare")


def spare_pid(container: Any) -> int:
    """The spare's host pid, as a login sees it: the listener's credentials on its socket."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        sock.connect(str(SPARES / container.id))
        return int.from_bytes(sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)[:4],
                              sys.byteorder)
    finally:
        sock.close()


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def test_a_spare_session_is_a_direct_session(
    nsenter: Callable[[bool], None], dockersh: Dockersh, make_user: Any
) -> None:
    """The same identity, privileges, cgroups, namespaces, directory and environment."""
    user = make_user()
    direct = dockersh(user, ["-c", PROBE], env={"LANG": "C.UTF-8"})
    await_spare(dockersh, user)
    forked = dockersh(user, ["-c", PROBE], env={"LANG": "C.UTF-8"})
    assert (forked.returncode, forked.stderr) == (0, b"")
    assert forked.stdout == direct.stdout
    assert b"NoNewPrivs:\t1" in forked.stdout and b"CapBnd:\t0000000000000000" in forked.stdout
    nsenter(False)
    assert not via_spare(dockersh, user)
    assert dockersh(user, ["-c", PROBE], env={"LANG": "C.UTF-8"}).stdout == direct.stdout


def test_exit_status_streams_stdin_and_bytes_through_the_spare(
    nsenter: Any, dockersh: Dockersh, make_user: Any
) -> None:
    user = make_user()
    await_spare(dockersh, user)
    proc = dockersh(user, ["-c", "echo out; echo err >&2; exit 42"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (42, b"out\n", b"err\n")
    data = os.urandom(3 * 2**20)
    proc = dockersh(user, ["-c", "cat; echo end >&2"], input=data, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, data, b"end\n")
    killed = dockersh(user, ["-c", "kill -TERM $$"])
    assert killed.returncode == -signal.SIGTERM


def test_what_the_spare_is_and_holds(
    nsenter: Any, dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    """The user's ids, no capabilities, no-new-privileges, not dumpable, inside every namespace
    and cgroup of the container's init, adopted by it, holding only /dev/null, its socket and
    its lock: no session's fds, no sessions flock (so no session is counted for it)."""
    user = make_user()
    await_spare(dockersh, user)
    container = container_of(user)
    init = int(container.attrs["State"]["Pid"])
    pid = spare_pid(container)
    st = status(pid)
    assert st["Uid"].split() == [str(user.uid)] * 4
    assert st["Gid"].split() == [str(user.gid)] * 4
    assert st["NoNewPrivs"] == "1"
    assert {st[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == {"0" * 16}
    assert os.stat(f"/proc/{pid}/fd").st_uid == 0  # not dumpable: /proc/PID is root's
    assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()
    for ns in ("mnt", "pid", "uts", "ipc", "net", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/{init}/ns/{ns}"), ns
    assert int(status(pid)["PPid"]) == init

    def fds() -> list[str]:
        return sorted(os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))

    wait_until(lambda: len(fds()) == 5, 10, "the spare done with spare_pid's connection")
    assert fds()[:4] == [*["/dev/null"] * 3, str(SPARES / f"{container.id}.lock")]
    assert fds()[4].startswith("socket:")
    assert sessions_of(user) == 0


def test_a_terminal_login_is_forked_by_the_spare_on_the_containers_pty(
    nsenter: Any, dockersh: Dockersh, make_user: Any
) -> None:
    """The monitor passes the spare a pty of the container's devpts (relay.py), which the
    session takes as its controlling terminal (/dev/tty opens) and names (`tty`)."""
    user = make_user()
    await_spare(dockersh, user)
    argv = user_argv(user, ["-c", f"{PPID}; [ -t 0 ] && : </dev/tty && tty"],
                     env={"TERM": "xterm"})
    child = pexpect.spawn(argv[0], argv[1:], timeout=30)
    child.expect(pexpect.EOF)
    child.close()
    ppid, parent, name = child.before.split()
    assert (ppid, child.exitstatus) == (b"PPid:", 0) and parent != b"0", child.before
    assert name.startswith(b"/dev/pts/"), child.before


def test_hangups_reach_the_command(nsenter: Any, dockersh: Dockersh, make_user: Any,
                                   container_of: Any) -> None:
    """A hangup of the monitor is passed on; a monitor killed outright leaves its command a
    SIGHUP, as a closed SSH channel would: without a terminal and with one (the container's
    pty, whose master dies with the monitor)."""
    user = make_user()
    await_spare(dockersh, user)
    container = container_of(user)
    for how in (signal.SIGHUP, signal.SIGKILL):
        for terminal in (False, True):
            master, slave = os.openpty() if terminal else (-1, subprocess.DEVNULL)
            command = f"exec sleep 31{how}{int(terminal)}"
            monitor = subprocess.Popen(user_argv(user, ["-c", command]), stdin=slave,
                                       stdout=slave if terminal else subprocess.PIPE,
                                       stderr=slave if terminal else None,
                                       start_new_session=True)
            if terminal:
                os.close(slave)

            def sleeping(command: str = command) -> bool:
                return command[5:] in str(container.top(ps_args="-o pid,args")["Processes"])

            wait_until(sleeping, 20, "the command running")
            monitor.send_signal(how)
            assert monitor.wait(timeout=20) == -how
            wait_until(lambda: not sleeping(), 20, "the command ending")
            if terminal:
                os.close(master)


def sessions_of(user: LinuxUser) -> int:
    ls = json.loads(subprocess.run(["/usr/local/bin/dockersh", "ls", "--json"],
                                   capture_output=True, check=True, text=True).stdout)
    return int(next(row["sessions"] for row in ls if row["user"] == user.name))


def test_a_forked_session_whose_monitor_died_still_counts(
    nsenter: Any, dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    """A command that ignores the hangup outlives its killed monitor: ls (and so gc) still
    see it as a session, as they do for docker exec and direct nsenter sessions."""
    user = make_user()
    await_spare(dockersh, user)
    monitor = subprocess.Popen(user_argv(user, ["-c", "trap '' HUP; sleep 317; echo"]),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    container = container_of(user)

    def sleeper() -> int:
        """Its host pid, 0 when it is not running."""
        rows = container.top(ps_args="-o pid,args")["Processes"] or []
        return next((int(row[0]) for row in rows if row[1] == "sleep 317"), 0)

    wait_until(lambda: sleeper() > 0, 20, "the command running")
    assert sessions_of(user) == 1
    monitor.kill()
    monitor.wait()
    time.sleep(1)
    assert sleeper() > 0 and sessions_of(user) == 1
    os.kill(sleeper(), signal.SIGKILL)
    wait_until(lambda: sessions_of(user) == 0, 20, "no session counted")


def test_a_spare_stopped_or_killed_by_its_user_costs_only_the_fast_path(
    nsenter: Any, dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    """Stopped: logins wait a second for it, then enter directly. Killed mid-session: that
    session's monitor can no longer learn its exit status and reports it killed; the next
    logins enter directly and leave a new spare."""
    user = make_user()
    await_spare(dockersh, user)
    pid = spare_pid(container_of(user))
    os.kill(pid, signal.SIGSTOP)  # as the user can (from a session not forked by it)
    began = time.monotonic()
    assert not via_spare(dockersh, user)
    assert time.monotonic() - began < 10
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), 10, "the stopped spare gone")
    await_spare(dockersh, user)  # a new one
    proc = dockersh(user, ["-c", "kill -KILL $PPID; sleep 1; echo still"])
    assert (proc.returncode, proc.stdout) == (-signal.SIGKILL, b"still\n")
    await_spare(dockersh, user)


def test_a_restarted_container_gets_a_new_spare(
    nsenter: Any, dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    user = make_user()
    await_spare(dockersh, user)
    container = container_of(user)
    old = spare_pid(container)
    container.restart(timeout=1)
    wait_until(lambda: not Path(f"/proc/{old}").exists(), 20, "the spare ending with its init")
    await_spare(dockersh, user)
    assert spare_pid(container) != old


def test_a_spare_for_other_ids_retires(
    nsenter: Any, dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    """The user's groups changed while a session kept the old container: the old spare refuses
    the new ids and stops listening (it serves its sessions to their end), and later sessions
    get the new groups, from a new spare."""
    user = make_user()
    await_spare(dockersh, user)
    old = spare_pid(container_of(user))
    keeper = subprocess.Popen(user_argv(user, ["-c", "sleep 300"]), stdin=subprocess.DEVNULL)
    try:
        # The command itself, not the front's argv that carries it: that one runs as the
        # user before the session holds its lock.
        wait_until(lambda: runs(user, b"sleep\x00300\x00"), 20, "the keeping session")
        subprocess.run(["usermod", "-aG", "users", user.name], check=True)
        assert b" 100 " in dockersh(user, ["-c", "echo \" $(id -G) \""]).stdout
        await_spare(dockersh, user)
        assert spare_pid(container_of(user)) != old
        assert b" 100 " in dockersh(user, ["-c", "echo \" $(id -G) \""]).stdout
        assert Path(f"/proc/{old}").exists()  # retired, it still serves the keeping session
    finally:
        keeper.kill()
        keeper.wait()
    wait_until(lambda: not Path(f"/proc/{old}").exists(), 10, "the old spare gone")


def test_gc_sweeps_the_files_of_removed_containers(
    nsenter: Any, dockersh: Dockersh, make_user: Any, container_of: Any
) -> None:
    user = make_user()
    await_spare(dockersh, user)
    container = container_of(user)
    container.remove(force=True)
    assert (SPARES / container.id).exists()
    assert [p for p in SECCOMP.iterdir() if p.name.startswith(f"{container.id}.")]
    subprocess.run(["/usr/local/bin/dockersh", "gc", user.name], check=True,
                   capture_output=True)
    assert (SPARES / container.id).exists()  # only a full gc sweeps
    # A lock in use (a spare of a container made after gc listed them) and a file being written
    # stay; the rest of a gone container's files go.
    held, writing, unheld = SPARES / "0f0f.lock", SPARES / ".0f0f.123", SECCOMP / "0e0e.1.lock"
    for path in (held, writing, unheld):
        path.touch()
    with held.open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["/usr/local/bin/dockersh", "gc"], check=True, capture_output=True)
    assert held.exists() and writing.exists() and not unheld.exists()
    for directory in (SPARES, SECCOMP):
        assert not [p for p in directory.iterdir() if p.name.startswith(container.id)]
    held.unlink()
    writing.unlink()
