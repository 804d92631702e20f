"""dockersh end to end: the real OpenSSH server on 127.0.0.1, the installed dockersh, the real
default session image (dockersh-session:latest, built from the repo's Dockerfile).

Every check goes through sshd exactly as a user's client would: commands, scp (both protocols),
sftp, rsync, interactive sessions in a real terminal (tmux), ForceCommand, authorized_keys
command=, concurrent first logins, and what sshd must refuse dockersh users (forwarding, agent,
X11). "In the container" is proved against `docker exec` facts: the container's hostname (set to
box-USER by the test config), its mount namespace and its PID 1 (the engine's init).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shlex
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncssh
import paramiko
import pytest
from support import REPO, docker, engine
from support.cmd import run
from support.install import NSSWITCH, NSSWITCH_SAVED, PAM_SSHD, restore_nsswitch
from support.sshd import DROPIN, HOST, SshdFactory, SshServer
from support.terminal import TmuxTerminal
from support.users import LinuxUser, UserFactory

from dockersh.login.locales import normal
from dockersh.paths import JAIL

pytestmark = pytest.mark.e2e

DOCKERSH = "/usr/local/bin/dockersh"
#: The client's TERM in the interactive tests: neither dockersh's fallback (xterm) nor tmux's.
CLIENT_TERM = "xterm-256color"

CONFIG = """\
# Written by tests/e2e/test_ssh.py for one test.
[container]
image = "dockersh-session:latest"
pull = "never"
hostname = "box-{{user}}"

[session]
exec = "{mode}"
banner = "Welcome {{user}}"
"""

#: What identifies the place a command runs: user, hostname, mount namespace, PID 1.
FACTS = 'id -un; hostname; readlink /proc/self/ns/mnt; tr "\\0" " " </proc/1/cmdline; echo'


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def session_config(dockersh_config: Callable[..., Path],
                   session_image: str) -> Callable[[str], None]:
    """session_config(mode): the real default image, never pulled, in that exec mode."""

    def write(mode: str = "docker") -> None:
        dockersh_config(engine.CONFIG + CONFIG.format(mode=mode))

    return write


@pytest.fixture(params=["docker", "nsenter"])
def mode(request: pytest.FixtureRequest, session_config: Callable[[str], None]) -> str:
    session_config(str(request.param))
    return str(request.param)


@pytest.fixture
def default_mode(session_config: Callable[[str], None]) -> str:
    session_config("docker")
    return "docker"


# --- Helpers ----------------------------------------------------------------------------------


def ok(proc: subprocess.CompletedProcess[bytes], what: str = "") -> bytes:
    """stdout of a process that must have exited 0."""
    assert proc.returncode == 0, (
        f"{what or proc.args} exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout[-2000:]!r}\n--- stderr\n{proc.stderr[-2000:]!r}"
    )
    return proc.stdout


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def container_of(user: LinuxUser) -> str:
    """The ID of the user's one managed container."""
    found = docker.containers(f"{docker.USER_LABEL}={user.name}")
    assert len(found) == 1, f"{user.name} has {len(found)} containers: {found}"
    return found[0]


def container_facts(user: LinuxUser) -> str:
    """FACTS as seen by `docker exec` in the user's container."""
    proc = run(["docker", "exec", "-u", f"{user.uid}:{user.gid}", container_of(user),
                "sh", "-c", FACTS], timeout=60)
    return proc.stdout


def assert_in_container(seen: bytes, user: LinuxUser) -> None:
    """seen (FACTS run through ssh) is the user's container, not the host."""
    facts = container_facts(user)
    lines = facts.splitlines()
    assert lines[0] == user.name and lines[1] == f"box-{user.name}", facts
    assert engine.INIT in lines[3], facts
    assert lines[2] != os.readlink("/proc/self/ns/mnt"), "docker exec ran on the host?"
    assert seen.decode() == facts


def client_opts(server: SshServer, user: LinuxUser) -> list[str]:
    """The ssh client's options (-F none, the key, no agent, ...) without the port."""
    argv = server.ssh_argv(user)
    return argv[1:argv.index("-p")]


def run_client(argv: Sequence[str | Path],
               timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/root"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ssh exited {proc.returncode} before port {port} listened"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {HOST}:{port} after {timeout}s")


def read_through(port: int, timeout: float = 10) -> bytes:
    """Connect to port; what arrives before EOF or 8 bytes or the timeout."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < 8 and time.monotonic() < deadline:
            try:
                chunk = s.recv(8 - len(data))
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        return data


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a client this test started, by its PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def processes(uid: int, cmdline: bytes) -> list[int]:
    """PIDs (host view) of uid's processes whose command line is exactly cmdline."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid and (entry / "cmdline").read_bytes() == cmdline:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_processes(uid: int, cmdline: bytes, present: bool, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while bool(pids := processes(uid, cmdline)) != present:
        if time.monotonic() > deadline:
            state = "running" if present else "gone"
            raise AssertionError(f"{cmdline!r} of uid {uid} not {state} after {timeout}s")
        time.sleep(0.05)
    return pids


def prompt(user: LinuxUser) -> re.Pattern[str]:
    """Debian's bash prompt in the user's container: NAME@box-NAME:~$"""
    return re.compile(rf"^{user.name}@box-{user.name}:~\$ ?$", re.M)


def terminal_login(tmux_terminal: Callable[..., TmuxTerminal], server: SshServer,
                   user: LinuxUser, width: int = 100, height: int = 30) -> TmuxTerminal:
    """ssh -tt with TERM=CLIENT_TERM in the client's environment, in a tmux pane; at the prompt."""
    argv = ["env", f"TERM={CLIENT_TERM}", *server.ssh_argv(user, tty=True)]
    term = tmux_terminal(argv, width=width, height=height)
    term.wait_for(prompt(user), timeout=30)
    return term


# --- A command --------------------------------------------------------------------------------


def test_command_status_streams_stdin_eof_and_binary(
    mode: str, sshd: SshdFactory, make_user: UserFactory
) -> None:
    server = sshd()
    user = make_user()
    assert_in_container(ok(server.ssh(user, FACTS)), user)

    proc = server.ssh(user, "echo out; echo err >&2; exit 42")
    assert (proc.returncode, proc.stdout, proc.stderr) == (42, b"out\n", b"err\n")
    # The same through a terminal: the exit status, and no banner (this is not a login shell).
    proc = server.ssh(user, "echo out; exit 3", tty=True)
    assert (proc.returncode, proc.stdout) == (3, b"out\r\n"), proc
    assert b"Welcome" not in proc.stdout + proc.stderr

    # stdin's EOF reaches the command: cat ends, and what follows it runs.
    proc = server.ssh(user, "cat; echo done", input=b"small input\n", timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"small input\ndone\n", b"")

    data = os.urandom(5 * 2**20)
    up = ok(server.ssh(user, "cat > ~/blob && sha256sum < ~/blob", input=data, timeout=90))
    assert up.split()[0].decode() == sha256(data)
    on_host = user.home / "blob"
    assert sha256(on_host.read_bytes()) == sha256(data)
    assert on_host.stat().st_uid == user.uid
    down = ok(server.ssh(user, "cat ~/blob", timeout=90))
    assert len(down) == len(data) and sha256(down) == sha256(data)


def test_users_have_no_docker_group_and_no_socket(
    mode: str, sshd: SshdFactory, make_user: UserFactory
) -> None:
    server = sshd()
    user = make_user()
    on_host = run(["id", "-Gn", user.name]).stdout.split()
    assert "dockersh" in on_host and "docker" not in on_host, on_host
    out = ok(server.ssh(user, "id -Gn; echo ---; "
                              "ls -l /var/run/docker.sock /run/docker.sock 2>&1; echo ---; "
                              "grep -c 'docker\\.sock' /proc/self/mountinfo; echo ---; "
                              "find / \\( -path /proc -o -path /sys \\) -prune -o -type s "
                              "-print 2>/dev/null | grep -c docker; true")).decode()
    groups, ls, mounts, sockets = (part.strip() for part in out.split("---"))
    assert "docker" not in groups.split() and user.name in groups.split(), groups
    assert ls.count("No such file or directory") == 2, ls
    assert mounts == "0" and sockets == "0", out


# --- File transfer ----------------------------------------------------------------------------


def check_file_transfer(server: SshServer, user: LinuxUser, workdir: Path) -> None:
    """scp (SFTP protocol and -O), sftp -b, rsync and sshfs, both ways, byte-exact, in the
    container."""
    opts = client_opts(server, user)
    port = str(server.port)
    remote = f"{user.name}@{HOST}"
    ssh_e = shlex.join(["ssh", *opts, "-p", port])
    local = workdir / "local"
    got = workdir / "got"
    local.mkdir()
    got.mkdir()
    ways = ("scp", "scp-O", "sftp", "rsync", "sshfs")
    originals = {way: os.urandom(2**20 + 17 * i) for i, way in enumerate(ways)}
    for way, data in originals.items():
        (local / way).write_bytes(data)

    # Up: each way puts its own file into the home.
    ok(run_client(["scp", *opts, "-P", port, local / "scp", f"{remote}:up-scp"]), "scp up")
    ok(run_client(["scp", "-O", *opts, "-P", port, local / "scp-O", f"{remote}:up-scp-O"]),
       "scp -O up")
    batch = workdir / "batch"
    batch.write_text(f"put {local / 'sftp'} up-sftp\n"
                     f"get up-scp {got / 'sftp'}\n"
                     f"get /etc/hostname {got / 'sftp-hostname'}\n")
    ok(run_client(["sftp", *opts, "-P", port, "-b", batch, remote]), "sftp -b")
    ok(run_client(["rsync", "-a", "-e", ssh_e, local / "rsync", f"{remote}:up-rsync"]), "rsync up")
    with sshfs_mount(ssh_e, f"{remote}:/", workdir / "mnt") as mnt:
        (mnt / user.home.relative_to("/") / "up-sshfs").write_bytes(originals["sshfs"])
    for way, data in originals.items():
        landed = user.home / f"up-{way}"
        assert landed.is_file(), f"{way} left nothing at {landed}"
        assert sha256(landed.read_bytes()) == sha256(data), f"{way} up changed the bytes"
        assert landed.stat().st_uid == user.uid, f"{way} up: {landed} is not the user's"

    # Down: each way fetches a file another way uploaded, then /etc/hostname (the container's).
    ok(run_client(["scp", *opts, "-P", port, f"{remote}:up-rsync", got / "scp"]), "scp down")
    ok(run_client(["scp", "-O", *opts, "-P", port, f"{remote}:up-sftp", got / "scp-O"]),
       "scp -O down")
    ok(run_client(["scp", "-O", *opts, "-P", port, f"{remote}:/etc/hostname",
                   got / "scp-O-hostname"]), "scp -O down /etc/hostname")
    ok(run_client(["rsync", "-a", "-e", ssh_e, f"{remote}:up-scp-O", f"{remote}:/etc/hostname",
                   got]), "rsync down")
    with sshfs_mount(ssh_e, f"{remote}:/", workdir / "mnt") as mnt:
        (got / "sshfs").write_bytes((mnt / user.home.relative_to("/") / "up-sshfs").read_bytes())
        (got / "sshfs-hostname").write_bytes((mnt / "etc" / "hostname").read_bytes())
    expected = {"scp": "rsync", "scp-O": "sftp", "sftp": "scp", "up-scp-O": "scp-O",
                "sshfs": "sshfs"}
    for name, way in expected.items():
        assert sha256((got / name).read_bytes()) == sha256(originals[way]), f"{name} down"
    # The engine writes the file: Docker ends it with a newline, Podman does not.
    container_hostname = f"box-{user.name}" + ("" if engine.PODMAN else "\n")
    for name in ("sftp-hostname", "scp-O-hostname", "hostname", "sshfs-hostname"):
        assert (got / name).read_text() == container_hostname, f"{name}: not the container's"


@contextlib.contextmanager
def sshfs_mount(ssh_e: str, remote: str, at: Path) -> Iterator[Path]:
    """``remote`` mounted at ``at`` with sshfs (Debian's, over FUSE) through ``ssh_e``; unmounted
    after, whatever happens."""
    at.mkdir(exist_ok=True)
    ok(run_client(["sshfs", "-o", f"ssh_command={ssh_e}", remote, at]),
       "sshfs")
    try:
        yield at
    finally:
        run(["umount", at], check=False)


def test_scp_sftp_rsync_byte_exact_into_the_home(
    default_mode: str, sshd: SshdFactory, make_user: UserFactory, tmp_path: Path
) -> None:
    server = sshd()
    user = make_user()
    check_file_transfer(server, user, tmp_path)
    container_of(user)  # exactly one container served all of it


# --- Interactive ------------------------------------------------------------------------------


def test_interactive_session_in_a_real_terminal(
    mode: str, sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    user = make_user()
    with (user.home / ".profile").open("a") as profile:
        profile.write('\necho "PROFILE-RAN-$((40 + 2))"\n')
    term = terminal_login(tmux_terminal, sshd(), user, width=100, height=30)
    screen = term.capture_pane(history=True)
    assert f"Welcome {user.name}" in screen, screen
    assert "PROFILE-RAN-42" in screen, screen

    term.type_line('echo "U=$(id -un) S=$(stty size) T=$TERM"')
    term.wait_for(f"U={user.name} S=30 100 T={CLIENT_TERM}")
    term.resize_window(120, 40)
    assert term.size() == (120, 40)
    term.type_line('echo "S2=$(stty size)"')
    term.wait_for("S2=40 120")

    # Ctrl-C reaches the foreground process, and the shell survives it.
    sleeper = b"sleep\x00100\x00"
    term.type_line("sleep 100")
    wait_processes(user.uid, sleeper, present=True)
    term.send_keys("C-c")
    wait_processes(user.uid, sleeper, present=False, timeout=10)
    term.type_line('echo "rc=$?"')
    term.wait_for(re.compile(r"^rc=130$", re.M))

    # Job control: a background job, and Ctrl-Z stopping a foreground one.
    term.type_line("sleep 100 &")
    wait_processes(user.uid, sleeper, present=True)
    term.type_line("jobs")
    term.wait_for(re.compile(r"^\[1\]\+\s+Running\s+sleep 100 &$", re.M))
    term.type_line("sleep 200")
    wait_processes(user.uid, b"sleep\x00200\x00", present=True)
    term.send_keys("C-z")
    term.wait_for(re.compile(r"^\[2\]\+\s+Stopped\s+sleep 200$", re.M))
    term.type_line("kill -9 %1 %2; wait; echo killed-$((1 + 1))")
    term.wait_for("killed-2")
    wait_processes(user.uid, sleeper, present=False)

    term.type_line("exit 7")
    assert term.wait_exit(timeout=30) == 7


def in_a_terminal(argv: list[str], rows: int, cols: int) -> bytes:
    """What argv writes when run on a new pty of that size; it must exit 0."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                start_new_session=True,
                                env={"PATH": "/usr/bin:/bin", "HOME": "/root"})
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed it
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=60) == 0, seen
        return seen.strip()
    finally:
        os.close(master)


def paramiko_shell(server: SshServer, user: LinuxUser, typed: bytes) -> tuple[int, bytes]:
    """paramiko's invoke_shell(), ``typed`` sent at once (before any prompt): the exit status
    and what the terminal showed."""
    assert user.key is not None
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(HOST, server.port, user.name, key_filename=str(user.key),
                       allow_agent=False, look_for_keys=False, timeout=30)
        channel = client.invoke_shell(width=100, height=30)
        channel.sendall(typed)
        channel.settimeout(60)
        seen = b""
        while chunk := channel.recv(65536):
            seen += chunk
        return channel.recv_exit_status(), seen
    finally:
        client.close()


#: The typed command's output on a line of its own (after bash's bracketed-paste mode switch).
HI = re.compile(rb"(^|\r)hi-42\r$", re.M)


def test_typed_ahead_input_is_kept(
    mode: str, sshd: SshdFactory, make_user: UserFactory,
) -> None:
    """What the user types (or pastes, or pipes into ssh -tt) before the shell is up reaches the
    shell, in both modes, as on a plain account (the control)."""
    server = sshd()
    plain = make_user(shell="/bin/bash", in_dockersh=False)
    user = make_user()
    typed = b"echo hi-$((40 + 2))\nexit 5\n"
    for who in (plain, user):
        proc = server.ssh(who, tty=True, input=typed, timeout=60)
        assert proc.returncode == 5 and re.search(HI, proc.stdout), (who.name, proc)
        code, seen = paramiko_shell(server, who, typed)
        assert code == 5 and re.search(HI, seen), (who.name, seen)


def test_a_terminal_has_its_size_from_the_start(
    mode: str, sshd: SshdFactory, make_user: UserFactory,
) -> None:
    """`ssh -t host 'stty size'`: the command's first look at its terminal sees the client's
    size, every time (the engine's pty is made at the exec's start; sized after it, a command
    could see 0 0)."""
    server = sshd()
    user = make_user()
    sizes = set()
    for _ in range(20):
        sizes.add(in_a_terminal(server.ssh_argv(user, "stty size", tty=True), 33, 111))
    assert sizes == {b"33 111"}


#: What a terminal session says about its terminal: its name, isatty, the named node being fd 0,
#: its owner, group and mode, SSH_TTY, and the size.
TTY_FACTS = (
    'echo "name=$(tty)"; [ -t 0 ] && echo isatty; '
    'echo "same=$(stat -L -c %d:%i /proc/self/fd/0)/$(stat -c %d:%i "$(tty)")"; '
    'stat -c "owner=%U %G %a" "$(tty)"; echo "ssh_tty=${SSH_TTY-unset}"; echo "size=$(stty size)"'
)


def tty_facts(tmux_terminal: Callable[..., TmuxTerminal], server: SshServer,
              user: LinuxUser) -> dict[str, str]:
    """TTY_FACTS from `ssh -tt` in a real 100x30 terminal, as name -> value."""
    term = tmux_terminal(server.ssh_argv(user, TTY_FACTS, tty=True), width=100, height=30)
    assert term.wait_exit(timeout=60) == 0, term.capture_pane(history=True)
    lines = term.capture_pane(history=True).splitlines()
    facts = dict(line.split("=", 1) for line in lines if "=" in line)
    facts["isatty"] = str("isatty" in lines)
    return facts


def test_nsenter_terminal_is_a_pty_of_the_containers_own(
    session_config: Callable[[str], None], sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    """As docker exec and a plain account: `tty` names the terminal (GPG_TTY=$(tty), mesg),
    owned by the user, at the client's size from the start; typed-ahead input runs; Ctrl-C
    kills the command as a signal; and no fd of the host's devpts reaches the container."""
    session_config("nsenter")
    server = sshd()
    user, plain = make_user(), make_user(shell="/bin/bash", in_dockersh=False)

    mine, control = tty_facts(tmux_terminal, server, user), tty_facts(tmux_terminal, server, plain)
    assert re.fullmatch(r"/dev/pts/\d+", control["name"]), control
    assert re.fullmatch(r"/dev/pts/\d+", mine["name"]), mine
    for facts, who in ((mine, user), (control, plain)):
        assert facts["isatty"] == "True", facts
        first, second = facts["same"].split("/")
        assert first == second, facts  # the name inside the container is the session's fd 0
        assert facts["owner"] == f"{who.name} tty 620", facts
        assert facts["size"] == "30 100", facts
    assert control["ssh_tty"] == control["name"]
    assert mine["ssh_tty"] in ("unset", mine["name"]), mine  # SSH_TTY: what `tty` prints

    # Typed-ahead input: the lines are there before the shell, and run.
    for who in (user, plain):
        proc = server.ssh(who, input=b"echo typed-$((40 + 2))\nexit 5\n", tty=True, timeout=60)
        assert proc.returncode == 5 and b"typed-42" in proc.stdout, proc

    # Ctrl-C on a command: killed by SIGINT, which the client reports as a plain account's.
    statuses = []
    for who in (user, plain):
        term = tmux_terminal(server.ssh_argv(who, "echo started; exec sleep 101", tty=True))
        term.wait_for("started", timeout=60)
        pids = wait_processes(who.uid, b"sleep\x00101\x00", present=True)
        if who is user:  # the session's command holds the container's pty, nothing of the host's
            host_devpts = os.stat("/dev/pts").st_dev
            fds = [f"/proc/{pid}/fd/{fd}" for pid in pids for fd in os.listdir(f"/proc/{pid}/fd")]
            assert len(fds) >= 3 and all(os.stat(fd).st_dev != host_devpts for fd in fds), [
                os.readlink(fd) for fd in fds]
        term.send_keys("C-c")
        statuses.append(term.wait_exit(timeout=30))
    assert statuses[0] == statuses[1] == 255, statuses


def test_banner_at_interactive_login_only(
    default_mode: str, sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    server = sshd()
    user = make_user()
    proc = server.ssh(user, "echo hi")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hi\n", b""), proc
    term = terminal_login(tmux_terminal, server, user)
    lines = term.capture_pane(history=True).splitlines()
    assert f"Welcome {user.name}" in lines, lines
    term.type_line("exit")
    assert term.wait_exit(timeout=30) == 0


# --- As a plain account: sshd's variables, git protocol v2 -----------------------------------

#: sshd's variables and the terminal's name, in one line.
SHOW_SSH = 'echo "$SSH_CONNECTION|$SSH_CLIENT|${SSH_TTY-none}|$(tty)"'


def ssh_variables(server: SshServer, user: LinuxUser, tty: bool) -> tuple[str, ...]:
    """SHOW_SSH's fields, with the client's port checked and left out (it differs each time)."""
    line = ok(server.ssh(user, SHOW_SSH, tty=tty, env={"SSH_TTY": "/dev/forged"})).decode()
    connection, client, *rest = line.strip().split("|")
    address, port, local, local_port = connection.split()
    assert (address, local, local_port) == (HOST, HOST, str(server.port)), line
    assert client == f"{HOST} {port} {server.port}", line
    return tuple(rest)


def asyncssh_session(server: SshServer, user: LinuxUser, command: str,
                     signal: str | None = None) -> tuple[int | None, str | None, bytes]:
    """``command`` through asyncssh: once it printed a line, the client sends ``signal`` (an
    SSH "signal" request). The exit status or the exit signal's name sshd reported, and the
    output."""
    async def session() -> tuple[int | None, str | None, bytes]:
        async with asyncssh.connect(HOST, server.port, username=user.name, known_hosts=None,
                                    client_keys=[str(user.key)], agent_path=None) as conn:
            proc = await conn.create_process(command, encoding=None)
            first = await asyncio.wait_for(proc.stdout.readline(), 60)
            if signal is not None:
                await asyncio.sleep(0.3)  # the line is out: the command is in its loop or sleep
                proc.send_signal(signal)
            await asyncio.wait_for(proc.wait(check=False), 60)
            rest = await proc.stdout.read()
            name = proc.exit_signal[0] if proc.exit_signal else None
            return (None if name else proc.exit_status), name, first + rest

    return asyncio.run(session())


#: A command that says it is up, then waits; USR1 ends it by its trap, with status 3.
WAITS = "trap 'echo got-USR1; exit 3' USR1; echo up; while :; do sleep 0.1; done"


def test_signals_and_deaths_by_signal_as_on_a_plain_account(
    mode: str, sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    """A client's "signal" request reaches the command; a command killed by a signal reaches
    the client as exit-signal (OpenSSH's ssh: status 255), an exit with 128 + N as that status;
    Ctrl-C on a command with a terminal kills it as a signal. Side by side with a plain
    account (sshd refuses signal requests to ForceCommand sessions, plain ones included)."""
    server = sshd()
    user, plain = make_user(), make_user(shell="/bin/bash", in_dockersh=False)
    waits = "echo up; exec sleep 60"
    cases = [(waits, "TERM"), (waits, "INT"), (waits, "HUP"), (waits, "KILL"), (WAITS, "USR1"),
             ("echo up; sleep 0.5; kill -TERM $$", None),
             ("echo up; sleep 0.5; kill -KILL $$", None), ("echo up; exit 143", None)]
    for command, signal in cases:
        theirs = asyncssh_session(server, plain, command, signal)
        ours = asyncssh_session(server, user, command, signal)
        assert ours == theirs, (command, signal, ours, theirs)
    assert [asyncssh_session(server, user, c, s)[:2] for c, s in cases] == [
        (None, "TERM"), (None, "INT"), (None, "HUP"), (None, "KILL"), (3, None), (None, "TERM"),
        (None, "KILL"), (143, None)]

    # OpenSSH's client: 255 for a death by signal, the status for an exit.
    for who in (plain, user):
        assert server.ssh(who, "sleep 0.5; kill -TERM $$").returncode == 255
        assert server.ssh(who, "exit 143").returncode == 143

    # Ctrl-C on a command with a terminal.
    for who in (user, plain):
        term = tmux_terminal(server.ssh_argv(who, "echo started; exec sleep 102", tty=True))
        term.wait_for("started", timeout=60)
        wait_processes(who.uid, b"sleep\x00102\x00", present=True)
        term.send_keys("C-c")
        assert term.wait_exit(timeout=30) == 255, who


def test_ssh_variables_as_on_a_plain_account(
    mode: str, sshd: SshdFactory, make_user: UserFactory,
) -> None:
    # This sshd accepts a client's SSH_TTY: where sshd sets none (no terminal), the client's
    # value would reach a plain account; dockersh never takes it.
    server = sshd(options={"AcceptEnv": "LANG LC_* GIT_PROTOCOL SSH_TTY"})
    plain = make_user(shell="/bin/bash", in_dockersh=False)
    user = make_user()
    assert ssh_variables(server, plain, tty=False) == ("/dev/forged", "not a tty")
    assert ssh_variables(server, user, tty=False) == ("none", "not a tty")
    tty_name, shown = ssh_variables(server, plain, tty=True)
    assert tty_name == shown and shown.startswith("/dev/pts/"), shown
    tty_name, shown = ssh_variables(server, user, tty=True)
    # Both modes: the container's own pty, named as `tty` names it there.
    assert tty_name == shown and shown.startswith("/dev/pts/"), shown


def git_protocol_seen(server: SshServer, user: LinuxUser, tmp_path: Path) -> bytes:
    """`git ls-remote` of a repository in the user's home, with protocol v2 asked for; the
    server's first packet (GIT_TRACE_PACKET)."""
    repo = user.home / "repo.git"
    if not repo.exists():
        run(["git", "init", "-q", "--bare", repo])
        run(["chown", "-R", f"{user.uid}:{user.gid}", repo])
    ssh = shlex.join(["ssh", *client_opts(server, user), "-p", str(server.port)])
    done = subprocess.run(
        ["git", "-c", "protocol.version=2", "ls-remote", f"{user.name}@{HOST}:repo.git"],
        capture_output=True, timeout=60, check=False, cwd=tmp_path, stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_SSH_COMMAND": ssh,
             "GIT_TRACE_PACKET": "1"})
    assert done.returncode == 0, done
    first = re.search(rb"packet: +[\w-]+< (.*)", done.stderr)
    assert first is not None, done.stderr
    return first.group(1)


def test_git_protocol_v2_when_sshd_accepts_it(
    mode: str, sshd: SshdFactory, make_user: UserFactory, tmp_path: Path,
) -> None:
    accepting = sshd(options={"AcceptEnv": "LANG LC_* GIT_PROTOCOL"})
    plain = make_user(shell="/bin/bash", in_dockersh=False)
    user = make_user()
    for who in (plain, user):
        assert git_protocol_seen(accepting, who, tmp_path) == b"version 2", who.name
        # sshd without AcceptEnv GIT_PROTOCOL: git falls back to protocol v0 (refs at once).
        assert git_protocol_seen(sshd(), who, tmp_path) != b"version 2", who.name


# --- Locales the client sends --------------------------------------------------------------

#: The locale settings, then a day's name in them (1970-01-01 was a Thursday).
#: And how many bytes `locale` complained in (none when every setting names a locale it has).
SHOW_LOCALE = 'echo "$LANG|${LC_ALL-}|$(locale 2>&1 >/dev/null | wc -c)"; date -u -d @0 +%A'


def test_locales_the_client_sends(
    mode: str, sshd: SshdFactory, make_user: UserFactory, session_image: str,
) -> None:
    server = sshd()  # AcceptEnv LANG LC_*, Debian's default
    user = make_user()
    label = (docker.image_labels(session_image, engine.HOST) or {})["dockersh.locales"]
    listed = ok(server.ssh(user, "locale -a")).decode().split()
    assert sorted(normal(n) for n in label.split()) == sorted(
        n for n in listed if n not in ("C", "POSIX")), "the label names what the image has"
    for tty in (False, True):
        german = server.ssh(user, SHOW_LOCALE, env={"LANG": "de_DE.UTF-8"}, tty=tty)
        assert ok(german).split() == [b"de_DE.UTF-8||0", b"Donnerstag"] and not german.stderr
        french = server.ssh(user, SHOW_LOCALE, env={"LC_ALL": "fr_FR.UTF-8"}, tty=tty)
        assert ok(french).split() == [b"C.UTF-8|fr_FR.UTF-8|0", b"jeudi"] and not french.stderr
        # Unknown: C.UTF-8, quietly (a plain account would print "cannot change locale").
        unknown = server.ssh(user, SHOW_LOCALE, env={"LANG": "xx_YY.UTF-8",
                                                      "LC_ALL": "en_US.ISO-8859-15"}, tty=tty)
        assert ok(unknown).split() == [b"C.UTF-8|C.UTF-8|0", b"Thursday"], unknown
        assert not unknown.stderr, unknown.stderr


# --- ForceCommand and authorized_keys command= -------------------------------------------------


def check_forced_entry(server: SshServer, user: LinuxUser,
                       tmux_terminal: Callable[..., TmuxTerminal]) -> None:
    """A user lands in the container through a forced dockersh."""
    seen = ok(server.ssh(user, FACTS))
    assert_in_container(seen, user)
    proc = server.ssh(user, "echo out; echo err >&2; exit 5")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, b"out\n", b"err\n")
    # Without a command: an interactive login shell in the container.
    term = terminal_login(tmux_terminal, server, user)
    assert f"Welcome {user.name}" in term.capture_pane(history=True)
    term.type_line('echo "U=$(id -un) H=$(hostname) S=$(stty size)"')
    term.wait_for(f"U={user.name} H=box-{user.name} S=30 100")
    term.type_line("exit 6")
    assert term.wait_exit(timeout=30) == 6


def test_sshd_force_command(
    default_mode: str, sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal],
) -> None:
    """ForceCommand with dash as login shell (dash reads no file for `-c`; bash would read
    ~/.bashrc on the host, which doctor refuses)."""
    user = make_user(shell="/bin/sh")
    server = sshd([f"Match User {user.name}", f"    ForceCommand {DOCKERSH}"])
    check_forced_entry(server, user, tmux_terminal)


def test_authorized_keys_command(
    default_mode: str, sshd: SshdFactory, make_user: UserFactory,
    tmux_terminal: Callable[..., TmuxTerminal], tmp_path: Path,
) -> None:
    """A command= key in a root-owned AuthorizedKeysFile (in ~/.ssh the user could rewrite it
    from inside the container and drop the restriction)."""
    user = make_user(key_options=f'command="{DOCKERSH}"')
    keys = Path(f"/etc/ssh/dockersh-test-keys-{user.name}")
    (user.home / ".ssh" / "authorized_keys").rename(keys)
    os.chown(keys, 0, 0)
    keys.chmod(0o644)  # sshd reads it as the user
    try:
        server = sshd([f"Match User {user.name}", f"    AuthorizedKeysFile {keys}"])
        check_forced_entry(server, user, tmux_terminal)
        # sshd puts the client's command (scp -t, rsync --server, the sftp subsystem) into
        # SSH_ORIGINAL_COMMAND: file transfer works through the forced key too.
        check_file_transfer(server, user, tmp_path)
    finally:
        keys.unlink()


# --- Concurrency ------------------------------------------------------------------------------


def test_twenty_concurrent_first_logins_make_one_container(
    default_mode: str, sshd: SshdFactory, make_user: UserFactory
) -> None:
    server = sshd()
    user = make_user()
    assert docker.containers(f"{docker.USER_LABEL}={user.name}") == []
    with ThreadPoolExecutor(max_workers=20) as pool:
        procs = list(pool.map(lambda i: server.ssh(user, f"echo {i}; " + FACTS, timeout=180),
                              range(20)))
    for i, proc in enumerate(procs):
        assert ok(proc, f"login {i}").startswith(f"{i}\n".encode())
    seen = {proc.stdout.split(b"\n", 1)[1] for proc in procs}
    assert len(seen) == 1, seen
    assert_in_container(seen.pop(), user)  # also: exactly one container


# --- Recovery -----------------------------------------------------------------------------------


def test_stopped_container_starts_again_after_its_generated_files_are_gone(
    default_mode: str, sshd: SshdFactory, make_user: UserFactory
) -> None:
    """install.sh --uninstall removes /var/lib/dockersh and keeps the containers: a stopped
    container (gc's idle stop, a reboot) must still start at its user's next login."""
    server = sshd()
    user = make_user()
    ok(server.ssh(user, "touch /tmp/kept"))
    cid = container_of(user)
    run(["docker", "stop", "-t", "1", cid], timeout=60)
    state = Path("/var/lib/dockersh") / f"dockersh-{user.name}"
    assert (state / "passwd").is_file()
    run(["rm", "-rf", "--", state])
    proc = server.ssh(user, "id -un; ls /tmp/kept")
    assert (proc.returncode, proc.stdout) == (0, f"{user.name}\n/tmp/kept\n".encode()), proc
    assert container_of(user) == cid


# --- What sshd must refuse dockersh users -----------------------------------------------------


HOST_SECRET = b"HOST-ONLY-SECRET"


def host_listener() -> tuple[socket.socket, int]:
    """A server on the host's loopback that hands every connection HOST_SECRET: no forward of
    a dockersh user may ever reach it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind((HOST, 0))
    serve_secret(server)
    return server, int(server.getsockname()[1])


def serve_secret(server: socket.socket) -> None:
    """Hand every connection to the bound ``server`` HOST_SECRET, in a thread."""
    server.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(HOST_SECRET)

    import threading

    threading.Thread(target=serve, daemon=True).start()


def local_forward(server: SshServer, who: LinuxUser, target: str,
                  clients: list[subprocess.Popen[bytes]]) -> int:
    """``ssh -N -L PORT:target`` as ``who``, listening (the client goes in ``clients``): PORT."""
    return local_forwards(server, who, [target], clients)[0]


def local_forwards(server: SshServer, who: LinuxUser, targets: Sequence[str],
                   clients: list[subprocess.Popen[bytes]]) -> list[int]:
    """One ``ssh -N`` connection of ``who`` with a ``-L PORT:target`` for each target: PORTs."""
    ports = [free_port() for _ in targets]
    forwards = [arg for port, target in zip(ports, targets, strict=True)
                for arg in ("-L", f"{port}:{target}")]
    clients.append(subprocess.Popen(server.ssh_argv(who, extra_opts=("-N", *forwards)),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL))
    for port in ports:
        wait_listening(port, clients[-1])
    return ports


def http_get(port: int, path: str = "/") -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        return recv_all(s)


def recv_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def socks5_get(proxy: int, port: int) -> bytes:
    """GET / from 127.0.0.1:port through a SOCKS5 proxy (ssh -D), numeric address."""
    with socket.create_connection((HOST, proxy), timeout=10) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(HOST) + port.to_bytes(2, "big"))
        reply = s.recv(10)
        if reply[1:2] != b"\x00":
            return b""
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        return recv_all(s)


def wait_http(port: int, proc: subprocess.Popen[bytes], marker: bytes,
              timeout: float = 30) -> bytes:
    """Until GET / through the tunnel on port shows marker (the server in the container is up)."""
    wait_listening(port, proc)
    deadline = time.monotonic() + timeout
    while True:
        try:
            page = http_get(port)
        except OSError:
            page = b""
        if marker in page:
            return page
        assert time.monotonic() < deadline, f"no page with {marker!r} through port {port}"
        time.sleep(0.2)


def test_forwarding_lands_in_the_container(
    mode: str, sshd: SshdFactory, make_user: UserFactory
) -> None:
    """-L, -D, -W and -R reach the user's own container's network, from the first login on;
    the host's loopback never; another user's container never."""
    server = sshd()
    secret, secret_port = host_listener()
    alice, bob = make_user(), make_user()
    clients: list[subprocess.Popen[bytes]] = []

    def start(who: LinuxUser, *opts: str, cmd: str | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(server.ssh_argv(who, cmd, extra_opts=opts),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin",
                                                             "HOME": "/root"})
        clients.append(proc)
        return proc

    try:
        # A first login with -L in effect: the container is made in sshd's PAM step, and the
        # host-only listener's port leads to the container's loopback, where nothing listens.
        lport = free_port()
        first = start(alice, "-N", "-L", f"{lport}:{HOST}:{secret_port}")
        wait_listening(lport, first)
        assert read_through(lport) == b""
        assert container_of(alice)

        # A VS Code-style flow: one connection starts a server in the container, a second
        # tunnels to it. Each user's own server, on the same port, says whose it is.
        servers = {}
        for who in (alice, bob):
            ok(server.ssh(who, f"mkdir -p www && echo {who.name}-page > www/index.html"))
            servers[who.name] = start(who, cmd="exec python3 -m http.server 8000 "
                                               "--bind 127.0.0.1 --directory www")
        lport = free_port()
        tunnel = start(alice, "-N", "-L", f"{lport}:{HOST}:8000")
        page = wait_http(lport, tunnel, alice.name.encode())
        assert f"{alice.name}-page".encode() in page and bob.name.encode() not in page

        # -D (SOCKS) and -W, to the same server, as the container reaches it.
        dport = free_port()
        socks = start(alice, "-N", "-D", f"{HOST}:{dport}")
        wait_listening(dport, socks)
        assert f"{alice.name}-page".encode() in socks5_get(dport, 8000)
        assert socks5_get(dport, secret_port) == b""
        for target, expect in ((8000, f"{alice.name}-page".encode()), (secret_port, b"")):
            w = subprocess.run(server.ssh_argv(alice, extra_opts=("-W", f"{HOST}:{target}")),
                               input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True,
                               timeout=60, check=False, env={"PATH": "/usr/bin:/bin"})
            assert expect in w.stdout and HOST_SECRET not in w.stdout, w.stderr

        # -R listens on the container's loopback (reachable from inside), not the host's.
        rport = free_port()
        reverse = start(alice, "-N", "-o", "ExitOnForwardFailure=yes",
                        "-R", f"{rport}:{HOST}:{secret_port}")
        inside = b""
        deadline = time.monotonic() + 20
        while HOST_SECRET not in inside and time.monotonic() < deadline:
            assert reverse.poll() is None, reverse.stderr.read() if reverse.stderr else ""
            inside = server.ssh(alice, f"exec 3<>/dev/tcp/{HOST}/{rport} && cat <&3").stdout
            time.sleep(0.2)
        assert HOST_SECRET in inside  # the client's listener, through the user's own -R
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            assert s.connect_ex((HOST, rport)) != 0, "sshd listened on the host"
        assert server.ssh(bob, f"exec 3<>/dev/tcp/{HOST}/{rport} && cat <&3").stdout == b""
    finally:
        for proc in clients:
            stop(proc)
        secret.close()


def test_forwarding_off_for_a_group(
    dockersh_config: Callable[..., Path], test_image: str, sshd: SshdFactory,
    make_user: UserFactory
) -> None:
    """[groups.X.session] forwarding = false: sshd gets an empty network namespace of its own
    and a jail without the home, so a forward reaches nothing — not the host, not even the
    user's own container or home (a unix-socket forward) — and the login itself still works.
    [container] home = "none" (the container does not have the host's home): TCP forwards work,
    and the jail has no home either."""
    group, homeless_group = f"nf{os.getpid()}", f"nh{os.getpid()}"
    run(["groupadd", group])
    run(["groupadd", homeless_group])
    clients: list[subprocess.Popen[bytes]] = []
    listeners: list[socket.socket] = []
    try:
        dockersh_config(f'{engine.CONFIG}[container]\nimage = "{test_image}"\npull = "never"\n'
                        f'shell = "/bin/sh"\n\n[groups.{group}.session]\nforwarding = false\n'
                        f'\n[groups.{homeless_group}.container]\nhome = "none"\n')
        server = sshd()
        user, control = make_user(groups=[group]), make_user()
        homeless = make_user(groups=[homeless_group])
        for who, forwarded, home_shared in ((control, True, True), (user, False, False),
                                            (homeless, True, False)):
            # A web server on the container's loopback, which a working -L would reach.
            ok(server.ssh(who, "mkdir -p www && echo served > www/index.html"))
            httpd = subprocess.Popen(server.ssh_argv(
                who, "exec busybox httpd -f -p 127.0.0.1:8000 -h www"),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            clients.append(httpd)
            lport = local_forward(server, who, f"{HOST}:8000", clients)
            if forwarded:
                assert b"served" in wait_http(lport, clients[-1], b"served")
            else:
                time.sleep(1)
                assert read_through(lport) == b""
            # A socket in the home (the container's too), which a unix-socket forward reaches.
            listener = socket.socket(socket.AF_UNIX)
            listener.bind(str(who.home / "s.sock"))
            os.chown(who.home / "s.sock", who.uid, who.gid)
            serve_secret(listener)
            listeners.append(listener)
            lport = local_forward(server, who, f"{who.home}/s.sock", clients)
            assert read_through(lport) == (HOST_SECRET[:8] if home_shared else b"")
        assert ok(server.ssh(user, "echo in")) == b"in\n"
    finally:
        for proc in clients:
            stop(proc)
        for listener in listeners:
            listener.close()
        run(["groupdel", group], check=False)
        run(["groupdel", homeless_group], check=False)


def test_agent_forwarded_inside_and_x11_refused(
    mode: str, sshd: SshdFactory, make_user: UserFactory, tmp_path: Path
) -> None:
    """ssh -A: the session's own agent at a socket inside the container (and no agent socket a
    process of the user could reach on the host). X11 stays refused: its sockets and cookie
    files would be the host's.

    The server allows X11; a user outside group dockersh gets it on the same server, which
    proves the check can see the difference.
    """
    server = sshd(options={"X11Forwarding": "yes"})
    user, other = make_user(), make_user()
    control = make_user(shell="/bin/bash", in_dockersh=False)
    agent_socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(agent_socket)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    clients: list[subprocess.Popen[bytes]] = [agent]

    def start(who: LinuxUser, *opts: str, cmd: str | None = None) -> subprocess.Popen[bytes]:
        argv = server.ssh_argv(who, cmd, extra_opts=opts)
        argv[argv.index("IdentityAgent=none")] = f"IdentityAgent={agent_socket}"
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                env={"PATH": "/usr/bin:/bin", "HOME": "/root",
                                     "DISPLAY": f"{HOST}:99", "XAUTHORITY": "/nonexistent"})
        clients.append(proc)
        return proc

    try:
        deadline = time.monotonic() + 10
        while not agent_socket.is_socket():
            assert agent.poll() is None and time.monotonic() < deadline, "no ssh-agent"
            time.sleep(0.05)
        assert user.key is not None
        run(["ssh-add", "-q", user.key], env={"SSH_AUTH_SOCK": str(agent_socket),
                                              "PATH": "/usr/bin:/bin"})
        fingerprint = run(["ssh-keygen", "-lf", user.key]).stdout.split()[1]

        # The agent, inside the user's container: ssh-add -l lists the client's key.
        proc = start(user, "-A", cmd='ssh-add -l; echo "S=$SSH_AUTH_SOCK"; '
                                     'echo "SOCKETS=$(ls -l /proc/$$/fd | grep -c socket:)"; '
                                     'read x; timeout 10 ssh-add -l || echo "no agent: $?"; '
                                     'read x')
        assert proc.stdout is not None and proc.stdin is not None
        listed = proc.stdout.readline()
        where = proc.stdout.readline().decode().strip()
        assert fingerprint in listed.decode(), listed
        assert re.fullmatch(r"S=/tmp/dockersh-agent\.[0-9a-f]{12}/agent\.sock", where), where
        fds = proc.stdout.readline().decode()
        # None of the monitor's sockets (the relay's listener) in the session (nsenter mode).
        assert fds == "SOCKETS=0\n", fds
        # Not in another user's container, and never at a path of the host: sshd made its
        # socket in the connection's jail (its own /tmp, in its own mount namespace).
        assert not Path(where[2:]).exists()
        assert b"dockersh-agent" not in ok(server.ssh(other, "ls -a /tmp"))
        assert not [p for p in Path("/tmp").glob("ssh-*/agent.*") if p.lstat().st_uid == user.uid]
        # sshd's socket is in a directory of the user's: the user renames it and puts a link to
        # a root-only socket in its place (what a member with a host shell could do). The relay
        # still reaches the socket it checked, and root never connects to the link's target
        # (whose silence would hang ssh-add: hence the timeout).
        ((jailed, host_socket),) = jailed_agent_sockets(user)
        root_only = socket.socket(socket.AF_UNIX)
        root_only.bind(str(tmp_path / "root-only.sock"))
        root_only.listen()
        root_only.setblocking(False)
        as_user = ["nsenter", "-t", str(jailed), "-m", "-r", "--", "setpriv",
                   f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", "sh", "-c"]
        run([*as_user, 'mv "$1" "$1.checked" && ln -s "$2" "$1"', "sh", str(host_socket),
             str(tmp_path / "root-only.sock")])
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        listed = proc.stdout.readline()
        run([*as_user, 'rm "$1" && mv "$1.checked" "$1"', "sh", str(host_socket)])  # sshd's again
        assert fingerprint in listed.decode(), listed
        with pytest.raises(BlockingIOError):
            root_only.accept()
        root_only.close()
        proc.stdin.write(b"\n")
        proc.communicate(timeout=30)

        # X11 forwarding: the control gets a DISPLAY, the dockersh user does not.
        for who, allowed in ((control, True), (user, False)):
            proc = start(who, "-Y", cmd='echo "D=${DISPLAY:-none}"; read line')
            assert proc.stdout is not None and proc.stdin is not None
            line = proc.stdout.readline()  # the session is up: sshd has answered the requests
            proc.stdin.write(b"\n")
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            if allowed:
                assert line.startswith(b"D=localhost:"), line
                assert b"X11 forwarding request failed" not in err, err
            else:
                assert line == b"D=none\n", line
                assert b"X11 forwarding request failed" in err, err
    finally:
        for proc in clients:
            stop(proc)


def jailed_agent_sockets(user: LinuxUser) -> list[tuple[int, Path]]:
    """(pid, path in its jail) of each post-auth sshd process of ``user``'s uid with an agent
    socket of that uid in its connection's jail (the uid may be an earlier test's user's, whose
    connections are still closing: they have no agent socket)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if not (entry.isdigit() and os.stat(f"/proc/{entry}").st_uid == user.uid and
                    Path(f"/proc/{entry}/comm").read_text() in ("sshd\n", "sshd-session\n")):
                continue
            found += [(int(entry), Path("/", *p.parts[4:]))
                      for p in Path(f"/proc/{entry}/root/tmp").glob("ssh-*/agent.*")
                      if p.lstat().st_uid == user.uid]
        except OSError:
            continue
    return found


UNIX_SERVER = """import os, socket, sys
path = sys.argv[1]
if os.path.lexists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o666)
s.listen(8)
print("up", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode())
    c.close()
"""


def test_unix_socket_forwards_reach_the_container_through_the_home_and_nothing_of_the_host(
    mode: str, sshd: SshdFactory, make_user: UserFactory, tmp_path: Path
) -> None:
    """ssh -L PORT:/path (VS Code's remoteServerListenOnSocket): sshd connects from the jail of
    the connection, which holds the user's home (the container's bind of it) and nothing else
    of the host: a socket a server in the container made in the home is reached; the host's
    sockets (world-connectable ones holding a secret, the Docker socket, through /proc, through
    a link in the home the user made) and another user's container's are not. All through one
    connection, whose forward to the user's own socket shows it was not refused as a whole."""
    server = sshd()
    alice, bob = make_user(), make_user()
    secrets = []
    for where in (Path("/run") / f"dockersh-test-{os.getpid()}.sock",
                  Path("/tmp") / f"dockersh-test-{os.getpid()}.sock"):
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(where))
        os.chmod(where, 0o666)
        serve_secret(listener)
        secrets.append((listener, where))
    clients: list[subprocess.Popen[bytes]] = []
    try:
        for who in (alice, bob):  # each one's server, in their own container, in their home
            script = who.home / "serve.py"
            script.write_text(UNIX_SERVER)
            os.chown(script, who.uid, who.gid)
            proc = subprocess.Popen(server.ssh_argv(
                who, f"exec python3 serve.py {who.home}/app.sock {who.name}-unix"),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            clients.append(proc)
            assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        ok(server.ssh(alice, f"ln -s {secrets[0][1]} link.sock"))
        bob.home.chmod(0o755)  # bob's socket is 0666 (serve.py): only the jail keeps alice out
        refused = [f"{bob.home}/app.sock", f"{alice.home}/link.sock", str(secrets[0][1]),
                   str(secrets[1][1]), "/var/run/docker.sock", "/run/docker.sock",
                   f"/proc/1/root{secrets[0][1]}", f"/proc/self/root{secrets[1][1]}"]
        own, *others = local_forwards(server, alice, [f"{alice.home}/app.sock", *refused],
                                      clients)
        for port, target in zip(others, refused, strict=True):
            assert read_through(port) == b"", target
        assert read_through(own) == f"{alice.name}-unix".encode()[:8]
        # The same forwards for a user outside group dockersh on this server: bob's socket and
        # the secrets can be read, so their silence above is the jail's doing.
        control = make_user(shell="/bin/bash", in_dockersh=False)
        ports = local_forwards(server, control, refused[:1] + refused[2:4], clients)
        assert [read_through(port) for port in ports] == [
            f"{bob.name}-unix".encode()[:8], HOST_SECRET[:8], HOST_SECRET[:8]]
    finally:
        for proc in clients:
            stop(proc)
        for listener, where in secrets:
            listener.close()
            where.unlink()


def test_a_host_whose_users_come_from_sssd_gets_sshd_without_the_jail_and_no_unix_forwards(
    default_mode: str, sshd: SshdFactory, make_user: UserFactory
) -> None:
    """On a host whose /etc/nsswitch.conf takes users and groups from sssd too, sudo in sshd's
    jail could not resolve them (no sssd socket there), so install.sh turns the jail off: the
    drop-in's `ChrootDirectory none` and `AllowStreamLocalForwarding no`, pam_dockersh.so's
    `nojail`; doctor agrees. Logins and TCP forwards (into the container) work; a unix-socket
    forward to the user's own socket reaches nothing. Installing again on the local-only
    nsswitch.conf puts the jail back, and the same forward reaches the socket. (No sssd here:
    glibc skips a source whose module is missing, so the local users still resolve.)"""
    saved = NSSWITCH.read_bytes()
    NSSWITCH_SAVED.write_bytes(saved)  # put back by the next run if this one is killed here
    alice = make_user()
    script = alice.home / "serve.py"
    script.write_text(UNIX_SERVER)
    os.chown(script, alice.uid, alice.gid)
    ok(sshd().ssh(alice, "mkdir -p www && echo alice-page > www/index.html"))
    clients: list[subprocess.Popen[bytes]] = []

    def reach_own_socket(server: SshServer) -> bytes:
        """What a unix-socket forward to a server on ~/app.sock in alice's container gives."""
        proc = subprocess.Popen(server.ssh_argv(
            alice, f"exec python3 serve.py {alice.home}/app.sock unix-ok"),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        clients.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        return read_through(local_forward(server, alice, f"{alice.home}/app.sock", clients))

    try:
        NSSWITCH.write_text(re.sub(r"^((?:passwd|group):.*)$", r"\1 sss", saved.decode(),
                                   flags=re.MULTILINE))
        out = run(["./install.sh"], cwd=REPO, timeout=900).stdout
        assert "sshd's jail is off: this host's passwd: sss; group: sss" in out, out
        dropin = DROPIN.read_text()
        assert "\n    ChrootDirectory none\n" in dropin, dropin
        assert "\n    AllowStreamLocalForwarding no\n" in dropin, dropin
        assert "\nsession required pam_dockersh.so nojail\n" in PAM_SSHD.read_text()
        doctor = run(["/opt/dockersh/sbin/dockersh", "doctor"], check=False).stdout
        assert "sshd's jail is off" in doctor and "nojail: nothing builds" not in doctor, doctor
        server = sshd()  # a server of its own: the drop-in changed
        assert ok(server.ssh(alice, "echo hi")) == b"hi\n"
        clients.append(subprocess.Popen(
            server.ssh_argv(alice, "exec python3 -m http.server 8000 --bind 127.0.0.1 "
                                   "--directory www"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        page = b""
        while b"alice-page" not in page and time.monotonic() < deadline:
            time.sleep(0.2)
            page = subprocess.run(server.ssh_argv(alice, extra_opts=("-W", f"{HOST}:8000")),
                                  input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True,
                                  timeout=60, check=False).stdout
        assert b"alice-page" in page, "no TCP forward into the container"
        assert reach_own_socket(server) == b""
    finally:
        for proc in clients:
            stop(proc)
        clients.clear()
        restore_nsswitch()
        out = run(["./install.sh"], cwd=REPO, timeout=900).stdout
    assert "sshd's jail is off" not in out, out
    assert f"\n    ChrootDirectory {JAIL}\n" in DROPIN.read_text()
    assert "nojail" not in PAM_SSHD.read_text()
    try:
        assert reach_own_socket(sshd()) == b"unix-ok"
    finally:
        for proc in clients:
            stop(proc)


def test_a_member_whose_login_shell_is_bash_gets_no_session(
    default_mode: str, sshd: SshdFactory, make_user: UserFactory
) -> None:
    """A directory (sssd, LDAP) can hand a member another login shell, in an account doctor
    cannot list: sshd would run it on the host, and bash reads ~/.bashrc first. pam_dockersh.so
    fails the session, so nothing runs (without that check, bash runs the command in sshd's
    jail: host programs, as the user). dash under ForceCommand still works
    (test_sshd_force_command)."""
    user = make_user(shell="/bin/bash")
    proc = sshd().ssh(user, "echo ran-$((6 * 7))", timeout=120)
    assert proc.returncode != 0 and b"ran-42" not in proc.stdout, proc
