"""The real dockersh executable in every way it is called, in both exec modes, with and
without a terminal: exit status, stderr apart from stdout, stdin EOF, binary bytes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pexpect
import pytest
from conftest import DOCKERSH, Dockersh, user_argv
from support.install import DEFAULT_TEST_CONFIG
from support.ops import runs, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(params=["docker", "nsenter"])
def mode(request: pytest.FixtureRequest, dockersh_config: Any) -> str:
    dockersh_config(f'[session]\nexec = "{request.param}"\n' + DEFAULT_TEST_CONFIG)
    return str(request.param)


def test_command_exit_status_and_separate_streams(
    mode: str, dockersh: Dockersh, make_user: Any
) -> None:
    user = make_user()
    proc = dockersh(user, ["-c", "echo out; echo err >&2; exit 42"])
    assert (proc.returncode, proc.stdout, proc.stderr) == (42, b"out\n", b"err\n")


def test_command_string_is_data_for_the_shell(
    mode: str, dockersh: Dockersh, make_user: Any
) -> None:
    user = make_user()
    proc = dockersh(
        user, ["-c", 'echo --user root --config /x; printf \'%s|\' "$0" "$1"', "a0", "a1"]
    )
    assert proc.stdout == b"--user root --config /x\na0|a1|"
    assert proc.returncode == 0


def test_stdin_eof_ends_the_command(mode: str, dockersh: Dockersh, make_user: Any) -> None:
    user = make_user()
    proc = dockersh(user, ["-c", "wc -c; echo done"], input=b"abc", timeout=30)
    assert proc.stdout.split() == [b"3", b"done"]


def test_five_megabytes_of_binary_both_ways(mode: str, dockersh: Dockersh, make_user: Any) -> None:
    user = make_user()
    data = os.urandom(5 * 2**20)
    up = dockersh(user, ["-c", "cat > ~/blob; sha256sum ~/blob"], input=data, timeout=60)
    assert up.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    down = dockersh(user, ["-c", "cat ~/blob"], timeout=60)
    assert down.stdout == data


def test_forced_command_runs_the_clients_command(
    mode: str, dockersh: Dockersh, make_user: Any
) -> None:
    user = make_user()
    env = {"SSH_ORIGINAL_COMMAND": "echo forced; id -un"}
    proc = dockersh(user, ["-c", DOCKERSH], env=env)
    assert proc.stdout == f"forced\n{user.name}\n".encode()
    assert dockersh(user, [], env=env).stdout == proc.stdout


def test_login_shell_under_a_real_terminal(mode: str, dockersh_config: Any, make_user: Any) -> None:
    """argv[0] "-dockersh", no arguments, a pty: an interactive login shell of the right size."""
    user = make_user()
    argv = user_argv(user, [], env={"TERM": "vt100"}, argv0="-dockersh")
    child = pexpect.spawn(argv[0], argv[1:], dimensions=(30, 100), timeout=30)
    child.expect(r"\$ ")  # the prompt: the terminal size is applied by then
    child.sendline("echo T=$TERM; stty size; id -un; [ -t 0 ] && [ -t 1 ] && echo has-tty")
    child.expect("T=vt100")
    child.expect("30 100")
    child.expect(user.name)
    child.expect("has-tty")
    child.setwinsize(40, 120)
    child.sendline("stty size")
    child.expect("40 120")
    child.sendline("sleep 30; echo slept-$?")
    child.expect("sleep 30; echo slept")  # the terminal's echo of the line
    time.sleep(0.5)  # the shell has started sleep by now
    child.sendintr()  # Ctrl-C reaches the foreground process, not dockersh
    child.sendline("echo after-$?")
    child.expect("after-130", timeout=10)  # well before the sleep could end by itself
    child.sendline("exit 7")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 7


def test_a_session_without_a_terminal_reads_and_writes_its_callers_own_pipes(
    mode: str, make_user: Any
) -> None:
    """No byte of a session without a terminal is copied on the way (not by the engine's
    stream, not by dockersh): the command has the very pipes sshd gave. docker mode hands them
    to the exec helper the engine runs (backend/docker/handover.py), which is its parent."""
    user = make_user()
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    proc = subprocess.Popen(
        user_argv(user, ["-c", "readlink /proc/self/fd/0; readlink /proc/self/fd/1; "
                               "cat /proc/$PPID/comm 2>/dev/null || echo none"]),
        stdin=stdin_r, stdout=stdout_w, stderr=subprocess.PIPE)
    expected = [f"pipe:[{os.fstat(stdin_r).st_ino}]", f"pipe:[{os.fstat(stdout_w).st_ino}]"]
    for fd in (stdin_r, stdin_w, stdout_w):
        os.close(fd)
    with os.fdopen(stdout_r, "rb") as out:
        lines = out.read().decode().split()
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert lines[:2] == expected
    # nsenter mode's session is born in the container with its parent outside it (pid 0), or
    # forked by the container's spare.
    assert lines[2:] == ["dockersh-exec"] if mode == "docker" else lines[2] in (
        "none", "dockersh-spare"), lines


def helpers_of(uid: int) -> list[int]:
    """docker mode's exec helpers running as ``uid`` (by their status: a non-dumpable
    process's /proc directory belongs to root)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if not entry.isdigit() or Path(f"/proc/{entry}/comm").read_text() != \
                    "dockersh-exec\n":
                continue
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()
        if uids[1] == str(uid):
            found.append(int(entry))
    return found


@pytest.mark.parametrize("killed", ["helper", "monitor"])
def test_the_docker_mode_command_ends_with_its_helper_or_its_monitor(
    killed: str, dockersh_config: Any, make_user: Any
) -> None:
    """docker mode without a terminal: the command dies with the exec helper that forked it
    (its parent-death signal), and gets a hangup when the session's monitor on the host is
    gone (a lost connection's, as on a plain account); nothing is left running."""
    dockersh_config('[session]\nexec = "docker"\n' + DEFAULT_TEST_CONFIG)
    user = make_user()
    proc = subprocess.Popen(user_argv(user, ["-c", "sleep 300"]), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: runs(user, b"sleep\x00300\x00"), 30, "the session's sleep 300")
        if killed == "helper":
            [victim] = helpers_of(user.uid)
        else:  # setpriv, env, the front and sudo exec in place: this is the monitor
            assert b"/opt/dockersh/sbin/dockersh" in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            victim = proc.pid
        os.kill(victim, 9)
        wait_until(lambda: not runs(user, b"sleep\x00300\x00"), 10, "the command gone")
        assert proc.wait(timeout=30) != 0
    finally:
        proc.kill()
        proc.wait()


def test_a_terminal_on_any_fd_keeps_docker_mode_off_the_helper(
    dockersh_config: Any, make_user: Any
) -> None:
    """Only stdout a terminal (`dockersh -c CMD < file` typed at one): the host's terminal is
    never handed into the container (where TIOCSTI or a lingering process could use it); the
    session takes the engine's stream."""
    dockersh_config('[session]\nexec = "docker"\n' + DEFAULT_TEST_CONFIG)
    user = make_user()
    master, slave = os.openpty()
    proc = subprocess.Popen(
        user_argv(user, ["-c", "cat /proc/$PPID/comm 2>/dev/null || echo none; "
                               "[ -t 1 ] && echo tty || echo notty"]),
        stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer is gone
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    assert out.split() == [b"none", b"notty"], out
