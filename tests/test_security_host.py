"""Adversarial tests on the host side: the sudo boundary, the real sshd, names, failures.

- Environment injection (LD_PRELOAD, LD_LIBRARY_PATH, PYTHONPATH, PYTHONSTARTUP, PYTHONHOME,
  DOCKER_HOST, DOCKER_CONFIG, PATH, HOME, BASH_ENV, ENV, IFS, SUDO_UID, USER) by a user who
  runs the login shell with any environment: read from /proc/PID/environ of the privileged
  process and of the docker CLI it starts, from inside the session, and by markers that any
  honoured variable would leave.
- Option injection through the command string over ssh (`ssh host -- '--user root'`,
  newlines, quotes, 100 KB), through SSH_ORIGINAL_COMMAND in forced-command mode (sshd's
  ForceCommand and authorized_keys command=), through argv[0].
- What a dockersh user may do with sudo: exactly one program, no root-only option or verb, no
  SUDO_UID of their choosing, no preserved environment; not in the docker group.
- Failures: Docker down (a private dockerd this test starts and stops), the image missing
  with pull "never", the lock held, a wrong password (PAM): one `dockersh:` line on stderr, a
  non-zero exit, and nothing run on the host.
- Names: dots, dashes, leading digits, 32 characters, upper case, two users whose names
  collided before the fix, and a foreign container holding the name.
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import paramiko
import pexpect  # type: ignore[import-untyped]
import pytest
from support.cmd import run
from support.install import DEFAULT_TEST_CONFIG, Installation
from support.sshd import SshdFactory
from support.users import LinuxUser, UserFactory

from dockersh.login import identity, locks
from dockersh.paths import SESSION_VARIABLES
from dockersh.plan import pipeline

pytestmark = pytest.mark.integration

FRONT = "/usr/local/bin/dockersh"
ENTRY = "/opt/dockersh/sbin/dockersh"
SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
ConfigWriter = Callable[..., Path]


def as_user(user: LinuxUser, args: Sequence[str], *, env: Mapping[str, str] | None = None,
            argv0: str | None = None, program: str = FRONT, input: bytes | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run ``program`` as ``user`` with exactly ``env`` (so the real sudo boundary is crossed
    with whatever environment an attacker chooses)."""
    return subprocess.run(user_argv(user, args, env=env, argv0=argv0, program=program),
                          input=input, stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, check=False)


def user_argv(user: LinuxUser, args: Sequence[str], *, env: Mapping[str, str] | None = None,
              argv0: str | None = None, program: str = FRONT) -> list[str]:
    exec_env = {"PATH": "/usr/bin:/bin"} if env is None else dict(env)
    prog = ([sys_python(), "-c", "import os,sys; os.execv(sys.argv[1], sys.argv[2:])",
             program, argv0] if argv0 is not None else [program])
    return ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups",
            "--reset-env", "--", "/usr/bin/env", "-i",
            *(f"{k}={v}" for k, v in exec_env.items()), *prog, *args]


def sys_python() -> str:
    return "/usr/bin/python3"


def one_error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The single `dockersh: ...` line of a refused login (and nothing on stdout)."""
    err = done.stderr.decode()
    assert done.returncode not in (0, 127), done
    assert done.stdout == b"", done
    assert err.count("\n") == 1 and err.startswith("dockersh: "), err
    assert "Traceback" not in err
    return err.rstrip("\n")


def as_root_for(user: LinuxUser, config: Path, args: Sequence[str],
                timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """The installed privileged part as root for ``user``, with a config of this test's own
    (immune to other test runs rewriting the global config at the same time)."""
    return subprocess.run([ENTRY, "--config", str(config), "--user", user.name, *args],
                          env={"PATH": SAFE_PATH}, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, check=False)


@pytest.fixture
def host_marker() -> Iterator[Path]:
    """A path in the host's /tmp that a command run on the host would create."""
    path = Path(f"/tmp/dockersh-ran-on-host-{secrets.token_hex(4)}")
    yield path
    existed = path.exists()
    path.unlink(missing_ok=True)
    assert not existed, f"{path} was created: something ran on the host"


def containers_of(name: str) -> list[str]:
    out = run(["docker", "ps", "-aq", "--filter", f"label=dockersh.user={name}"], timeout=30)
    return out.stdout.split()


# --- the users' powers -------------------------------------------------------------------------


def test_users_are_not_in_the_docker_group_and_cannot_reach_the_socket(
    installed: Installation, make_user: UserFactory,
) -> None:
    user = make_user()
    groups = run(["id", "-nG", user.name]).stdout.split()
    assert "dockersh" in groups and "docker" not in groups
    sock = os.stat("/var/run/docker.sock")
    assert stat.S_IMODE(sock.st_mode) & 0o007 == 0  # nothing for "other"
    assert sock.st_gid not in os.getgrouplist(user.name, user.gid)
    done = as_user(user, ["-c", "import socket; s = socket.socket(socket.AF_UNIX); "
                                "s.connect('/var/run/docker.sock')"], program=sys_python())
    assert b"PermissionError" in done.stderr, done


@pytest.mark.parametrize("args, refused", [
    (["config", "check"], "config"),
    (["config", "show", "root"], "config"),
    (["--config", "/tmp/evil.toml", "-c", "id"], "--config"),
    (["--config=/etc/shadow"], "--config"),
    (["--debug", "-c", "id"], "--debug"),
    (["ls"], "ls"),
    (["rm", "root"], "rm"),
    (["gc", "--idle", "0"], "gc"),
    (["enroll", "nobody"], "enroll"),
    (["doctor"], "doctor"),
    (["sessions"], "sessions"),
    (["replay", "20261202T061530Z-root-1"], "replay"),
    (["metrics"], "metrics"),
])
def test_root_only_options_and_verbs_through_sudo(
    dockersh_config: ConfigWriter, make_user: UserFactory, args: list[str], refused: str,
) -> None:
    user = make_user()
    for program in (FRONT, "/usr/bin/sudo"):
        argv = args if program == FRONT else ["-n", "--", ENTRY, *args]
        done = as_user(user, argv, program=program)
        assert one_error_line(done) == f"dockersh: only root may use {refused}"
    assert containers_of(user.name) == []


def test_sudo_allows_one_program_and_no_chosen_environment(
    installed: Installation, make_user: UserFactory,
) -> None:
    user = make_user()
    attempts = {
        "SUDO_UID": ["-n", "SUDO_UID=0", ENTRY, "--user", "root", "-c", "id"],
        "LD_PRELOAD": ["-n", "LD_PRELOAD=/tmp/x.so", ENTRY, "-c", "id"],
        "PYTHONPATH": ["-n", "PYTHONPATH=/tmp", ENTRY, "-c", "id"],
        "preserve": ["-n", "-E", ENTRY, "-c", "id"],
        "preserve-list": ["-n", "--preserve-env=PYTHONPATH", ENTRY, "-c", "id"],
        "shell": ["-n", "-s"],
        "other program": ["-n", "/bin/sh", "-c", "id"],
        "another user": ["-n", "-u", "daemon", ENTRY, "-c", "id"],
        "edit": ["-n", "-e", "/etc/dockersh/dockersh.toml"],
    }
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "/tmp", "LD_PRELOAD": "/tmp/x.so"}
    for what, argv in attempts.items():
        done = as_user(user, argv, program="/usr/bin/sudo", env=env)
        assert done.returncode != 0, what
        assert done.stdout == b"", what
        assert b"uid=" not in done.stderr, what


def test_sudoers_keeps_only_the_session_variables(installed: Installation) -> None:
    text = installed.sudoers.read_text()
    keep = re.search(r'env_keep\s*=\s*"([^"]*)"', text)
    assert keep is not None
    assert keep.group(1).split() == list(SESSION_VARIABLES)
    assert "env_reset" in text and "!env_reset" not in text
    assert "SETENV" not in text and "env_keep +=" not in text
    assert os.stat(installed.sudoers).st_mode & 0o777 == 0o440


# --- environment injection -----------------------------------------------------------------


class Evil:
    """Files that betray any use of an injected variable by leaving a marker."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dockersh-evil-", dir="/tmp"))
        self.markers = self.root / "markers"
        self.markers.mkdir()
        self.markers.chmod(0o1777)
        mark = f'import os; open("{self.markers}/py-%d-%d" % (os.getuid(), os.geteuid()), "w")'
        for rel in ("py/sitecustomize.py", "py/usercustomize.py", "py/dockersh/__init__.py",
                    "py/dockersh/cli.py", "startup.py", "home/lib/python3.11/os.py"):
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(mark + "\n")
        for name in ("sudo", "id", "docker", "python3", "sh", "env", "setpriv", "dockersh"):
            self.script(f"bin/{name}")
        self.script("bashenv.sh")
        (self.root / "dockercfg").mkdir()
        (self.root / "dockercfg" / "config.json").write_text("{not json")
        (self.root / "home" / ".docker").mkdir(parents=True)
        (self.root / "home" / ".docker" / "config.json").write_text("{not json")
        (self.root / "lib").mkdir()
        self.connections: list[str] = []
        self.sock_path = self.root / "docker.sock"
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.sock_path))
        self.sock_path.chmod(0o777)
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        for path in [self.root, *self.root.rglob("*")]:
            if path != self.markers and not path.is_socket():
                path.chmod(0o755)

    def script(self, rel: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'#!/bin/sh\n/usr/bin/touch "{self.markers}/{rel.replace("/", "_")}'
                        f'-$(/usr/bin/id -u)"\n')

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append("connected")
            conn.close()

    def env(self, user: LinuxUser) -> dict[str, str]:
        r = self.root
        return {
            "LD_PRELOAD": f"{r}/lib/preload.so",
            "LD_LIBRARY_PATH": f"{r}/lib",
            "LD_AUDIT": f"{r}/lib/audit.so",
            "GCONV_PATH": f"{r}/lib",
            "LOCPATH": f"{r}/lib",
            "NLSPATH": f"{r}/lib/%N",
            "GLIBC_TUNABLES": "glibc.malloc.check=3",
            "PYTHONPATH": f"{r}/py",
            "PYTHONSTARTUP": f"{r}/startup.py",
            "PYTHONHOME": f"{r}/home",
            "PYTHONINSPECT": "1",
            "PYTHONUSERBASE": f"{r}/py",
            "DOCKER_HOST": f"unix://{self.sock_path}",
            "DOCKER_CONFIG": f"{r}/dockercfg",
            "DOCKER_CERT_PATH": f"{r}/dockercfg",
            "PATH": f"{r}/bin:/usr/bin:/bin",
            "HOME": f"{r}/home",
            "BASH_ENV": f"{r}/bashenv.sh",
            "ENV": f"{r}/bashenv.sh",
            "IFS": "/= ",
            "SUDO_UID": "0",
            "SUDO_USER": "root",
            "USER": "root",
            "LOGNAME": "root",
            "SHELL": f"{r}/bin/sh",
            "LANG": "C.UTF-8",
            "LC_ALL": f"{r}/../../etc/shadow",
            "TZ": f"{r}/zone",
            "TERM": "xterm%n%n",
            "GIT_PROTOCOL": "version=2",
        }

    def left(self) -> list[str]:
        return sorted(p.name for p in self.markers.iterdir()) + self.connections

    def close(self) -> None:
        self.stop.set()
        self.server.close()
        self.thread.join(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def evil() -> Iterator[Evil]:
    e = Evil()
    yield e
    e.close()


INJECTED = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "GCONV_PATH", "LOCPATH", "NLSPATH",
            "GLIBC_TUNABLES", "PYTHONPATH", "PYTHONSTARTUP",
            "PYTHONHOME", "PYTHONINSPECT", "PYTHONUSERBASE", "DOCKER_HOST", "DOCKER_CONFIG",
            "DOCKER_CERT_PATH", "BASH_ENV", "ENV", "IFS")


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


PRIVILEGED = f"/opt/dockersh/venv/bin/python3\0-IS\0{ENTRY}\0"


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def session_started(user: LinuxUser) -> bool:
    audit = Path("/var/log/dockersh/audit.jsonl")
    lines = audit.read_text().splitlines() if audit.exists() else []
    records = [json.loads(line) for line in lines]
    return any(r.get("user") == user.name and r.get("event") == "session-start" for r in records)


def assert_not_evil(env: Mapping[str, str], evil: Evil, user: LinuxUser, where: str) -> None:
    for name in INJECTED:
        assert name not in env, f"{name} reached {where}: {env.get(name)}"
    for name, value in env.items():
        assert str(evil.root) not in value, f"{name}={value} reached {where}"
    assert env.get("SUDO_UID", str(user.uid)) == str(user.uid), where


@pytest.mark.parametrize("exec_mode", ["docker", "nsenter"])
def test_environment_injection_has_no_effect(
    dockersh_config: ConfigWriter, make_user: UserFactory, evil: Evil, exec_mode: str,
) -> None:
    # env_pass "*": whatever crosses sudo would be shown inside the session too.
    dockersh_config(f'[session]\nexec = "{exec_mode}"\nenv_pass = ["*"]\n' + DEFAULT_TEST_CONFIG)
    user = make_user()
    proc = subprocess.Popen(user_argv(user, ["-c", "cat; env"], env=evil.env(user)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        # setpriv, env, the front and sudo exec in place (sudo with !pam_setcred), so the
        # privileged Python is the process itself (an older sudo keeps it as a child). Wait
        # until the session has started (its audit record is written), while `cat` holds it
        # open.
        deadline = time.monotonic() + 30
        priv = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                priv = next((k for k in [proc.pid, *children_of(proc.pid)]
                             if cmdline(k).startswith(PRIVILEGED)), 0)
            except OSError:
                priv = 0
            if priv and session_started(user):
                break
            time.sleep(0.05)
        assert priv and session_started(user), (proc.poll(), proc.poll() is not None and
                                                proc.communicate()[1])
        privileged = environ_of(priv)
        assert_not_evil(privileged, evil, user, "the privileged part")
        assert privileged["SUDO_UID"] == str(user.uid)
        for child in children_of(priv):  # the shell nsenter started, or a docker CLI
            if cmdline(child).startswith(PRIVILEGED):
                continue
            if os.readlink(f"/proc/{child}/exe").endswith("/docker"):
                assert environ_of(child) == {  # a fixed environment, nothing of the caller's
                    "PATH": SAFE_PATH, "DOCKER_HOST": "unix:///var/run/docker.sock",
                    "DOCKER_CONFIG": "/nonexistent", "HOME": "/nonexistent"}
            else:
                assert_not_evil(environ_of(child), evil, user, "the session")
        out, err = proc.communicate(b"", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    inside = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    assert_not_evil(inside, evil, user, "the container")
    assert inside["USER"] == inside["LOGNAME"] == user.name
    assert inside["HOME"] == str(user.home)
    # sudo's env_check dropped the unsafe values of variables it otherwise keeps.
    assert "LC_ALL" not in inside and "TZ" not in inside
    assert inside.get("TERM") in (None, "unknown")  # sudo's stand-in for a dropped TERM
    assert inside["LANG"] == "C.UTF-8"
    assert inside["GIT_PROTOCOL"] == "version=2"  # the front and sudo keep it (issue 12)
    # The front is static: no loader to complain about the user's own LD_PRELOAD. Nothing may
    # show, e.g. the docker CLI reading a planted config.json.
    assert err == b"", err
    assert evil.left() == []


def test_privileged_entry_is_isolated_from_python_variables(
    installed: Installation, evil: Evil,
) -> None:
    """Even if a PYTHON* variable got past sudo (or root runs it), `python3 -I` ignores it."""
    env = {"PATH": SAFE_PATH, "PYTHONPATH": f"{evil.root}/py",
           "PYTHONSTARTUP": f"{evil.root}/startup.py", "PYTHONINSPECT": "1",
           "PYTHONUSERBASE": f"{evil.root}/py", "PYTHONHOME": f"{evil.root}/home"}
    done = subprocess.run([ENTRY, "--version"], env=env, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=30, check=False)
    assert done.returncode == 0 and done.stdout.startswith(b"dockersh "), done
    assert evil.left() == []
    first = Path(ENTRY).read_text().splitlines()[0]
    assert first == "#!/opt/dockersh/venv/bin/python3 -IS"


# --- option injection ----------------------------------------------------------------------


def test_option_injection_through_ssh(dockersh_config: ConfigWriter, make_user: UserFactory,
                                      sshd: SshdFactory, host_marker: Path) -> None:
    user = make_user()
    server = sshd()
    for attack in (f"--user root -c 'touch {host_marker}'", "--config /tmp/evil.toml",
                   "--debug", "config check", "--user=root", "-c id"):
        done = server.ssh(user, attack)
        assert_reached_the_container_shell(user, attack, done)
    assert containers_of("root") == []
    checks = {
        "echo one\necho two": b"one\ntwo\n",
        """printf '%s|' "a b" 'c"d' "it's" \\$HOME '$(id)'""":
            b"a b|c\"d|it's|$HOME|$(id)|",
        "printf %s " + "x" * 100_000 + " | wc -c": b"100000\n",
        "id -un; --user root 2>/dev/null; echo $?": f"{user.name}\n127\n".encode(),
    }
    for command, expected in checks.items():
        done = server.ssh(user, command)
        assert (done.returncode, done.stdout) == (0, expected), (command[:60], done)


NOTICE = re.compile(rb"dockersh: (your container|the configuration of your container)")


def assert_reached_the_container_shell(user: LinuxUser, command: str,
                                       done: subprocess.CompletedProcess[bytes]) -> None:
    """dockersh took ``command`` as data and the container's shell got it: that shell either
    did not find the command (127) or, like every POSIX shell given `sh -c -...`, read the
    leading dash as its own option (2). dockersh itself said nothing (but for the notices of
    its container's lifecycle, which another test's config may cause)."""
    stderr = b"".join(line for line in done.stderr.splitlines(keepends=True)
                      if not NOTICE.match(line))
    done = subprocess.CompletedProcess(done.args, done.returncode, done.stdout, stderr)
    assert not any(line.startswith(b"dockersh:") for line in stderr.splitlines()), done
    assert done.returncode in (2, 127), (command, done)
    assert re.fullmatch(rb"/bin/sh: (.* not found|-c requires an argument|illegal option .*)\n",
                        done.stderr), (command, done)
    audit = Path("/var/log/dockersh/audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in audit if f'"{user.name}"' in line]
    assert any(r["event"] == "session-start" and r["command"] == command and
               r["container"] == f"dockersh-{user.name}" for r in records), (command, records)


FORCED = ("--user root", "--config /etc/shadow -c id", "--debug config check",
          "-c 'id -u'", "dockersh --user root")


def test_forced_command_ssh_original_command_is_only_a_command(
    dockersh_config: ConfigWriter, make_user: UserFactory, sshd: SshdFactory,
) -> None:
    user = make_user()
    forced = sshd([f"Match User {user.name}", f"    ForceCommand {FRONT}"])
    keyed = make_user(key_options=f'command="{FRONT}",no-port-forwarding')
    for server, who in ((forced, user), (sshd(), keyed)):
        for attack in FORCED:
            assert_reached_the_container_shell(who, attack, server.ssh(who, attack))
        done = server.ssh(who, "id -un")
        assert (done.returncode, done.stdout) == (0, f"{who.name}\n".encode())
    assert containers_of("root") == []


@pytest.mark.parametrize("argv0", ["--user=root", "--config=/tmp/evil.toml", "-c", "--debug",
                                   "config", "-dockersh --user root"])
def test_argv0_is_not_an_option(dockersh_config: ConfigWriter, make_user: UserFactory,
                                argv0: str) -> None:
    user = make_user()
    done = as_user(user, ["-c", "id -un"], argv0=argv0)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{user.name}\n".encode(), b"")


# --- failures: one line, non-zero, nothing on the host ---------------------------------------


def test_image_missing_with_pull_never(installed: Installation, make_user: UserFactory,
                                       host_marker: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[container]\nimage = "dockersh-test/absent:never"\npull = "never"\n'
                      'shell = "/bin/sh"\n')
    user = make_user()
    line = one_error_line(as_root_for(user, config, ["-c", f"touch {host_marker}"]))
    assert "dockersh-test/absent:never" in line and 'pull = "never"' in line
    assert containers_of(user.name) == []


def test_lock_timeout(installed: Installation, make_user: UserFactory,
                      host_marker: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[docker]\nlock_timeout = "1s"\n' + DEFAULT_TEST_CONFIG)
    user = make_user()
    lock_path, _ = locks.paths(user.name)
    fd = locks.open_lock(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        began = time.monotonic()
        line = one_error_line(as_root_for(user, config, ["-c", f"touch {host_marker}"]))
        assert time.monotonic() - began < 10
    finally:
        os.close(fd)
    assert line.startswith("dockersh: timed out after 1s waiting for ")
    assert containers_of(user.name) == []


@pytest.mark.parametrize("limit", ["-S -f 1", "-f 1"])
def test_the_users_rlimits_cannot_suppress_audit_records(
        dockersh_config: ConfigWriter, make_user: UserFactory, tmp_path: Path,
        limit: str) -> None:
    """sudo passes the user's limits to the root side: with `ulimit -f 1` an append to an audit
    file past the limit failed (EFBIG) and was dropped, and the session ran unrecorded. The limits
    go back up at entry; a hard limit root cannot raise (no CAP_SYS_RESOURCE) fails closed."""
    audit = tmp_path / "audit.jsonl"
    audit.write_text("{}\n" * 2048)  # 6 KiB: past the 512 bytes of dash's `ulimit -f 1`
    dockersh_config(DEFAULT_TEST_CONFIG + f'[audit]\nfile = "{audit}"\n')
    user = make_user()
    done = as_user(user, ["-c", f"ulimit {limit} && exec {FRONT} -c 'touch ~/ran'"],
                   program="/bin/sh", env={"PATH": "/usr/bin:/bin", "TZ": "EST5"})
    records = [r for line in audit.read_text().splitlines()[2048:]
               if (r := json.loads(line))["event"].startswith("session-")]
    if (user.home / "ran").exists():
        assert done.returncode == 0, done
        assert [r["event"] for r in records] == ["session-start", "session-end"]
        assert all(r["time"].endswith("Z") for r in records)  # TZ came through sudo
    else:
        assert limit == "-f 1", done  # only a hard limit may stop the session
        assert one_error_line(done) == ("dockersh: the file size limit (ulimit -f) is 512 bytes "
                                        "and cannot be raised here; log in without it")  # dash
        assert records == []


def test_no_core_dump_of_the_root_side_whatever_ulimit_c_says(
        dockersh_config: ConfigWriter, make_user: UserFactory) -> None:
    """`ulimit -c unlimited` before the login: the root side's soft core limit is 0 all the same
    (a SIGQUIT before the handoff would have the kernel write root's memory as a file named
    `core` into the caller's working directory)."""
    dockersh_config(DEFAULT_TEST_CONFIG + '[session]\nexec = "nsenter"\n')
    user = make_user()
    inside = "echo started; sleep 30"
    session = subprocess.Popen(
        user_argv(user, ["-c", f"ulimit -c unlimited && exec {FRONT} -c '{inside}'"],
                  program="/bin/sh"), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        assert session.stdout is not None
        assert session.stdout.readline() == b"started\n"
        [monitor] = [pid for pid in filter(str.isdigit, os.listdir("/proc"))
                     if root_side_of(int(pid), user.uid)]
        limits = Path(f"/proc/{monitor}/limits").read_text().splitlines()
        core = next(line for line in limits if line.startswith("Max core file size"))
        assert core.split()[4] == "0", core
    finally:
        session.kill()
        session.wait()


def root_side_of(pid: int, uid: int) -> bool:
    """Is ``pid`` the root dockersh process that serves ``uid`` (on the host: not the spare
    it leaves in the container; root: not the signal catcher it forks as the user)?"""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        on_host = os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return (on_host and "\nUid:\t0\t" in status and f"SUDO_UID={uid}".encode() in environ
            and b"/opt/dockersh/sbin/dockersh" in cmdline)


class ZeroWindowTransport(paramiko.Transport):
    """A client that opens every channel with a window of 0 bytes: sshd then reads nothing of
    the session's stdout and stderr, which fill up and block their writer."""

    def _sanitize_window_size(self, window_size: int | None) -> int:
        return 0


def warning_of_length(user: LinuxUser, config: str, length: int) -> None:
    """Write a ~/.dockersh.toml whose warning, as the login prints it, is ``length`` bytes."""
    def printed(n: int) -> int:
        (user.home / ".dockersh.toml").write_text(f"[container]\n{'k' * n} = 1\n")
        os.chown(user.home / ".dockersh.toml", user.uid, user.gid)
        warnings = pipeline.effective(identity.by_name(user.name), config)[1]
        return sum(len(f"dockersh: {w}\n".encode()) for w in warnings)
    base = printed(1) - 1
    assert printed(length - base) == length


def blocked_writing(uid: int, timeout: float = 30) -> int:
    """The pid of the root dockersh serving ``uid`` once it is blocked writing to a pipe."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                wchan = Path(f"/proc/{pid}/wchan").read_text()
            except OSError:
                continue
            if f"SUDO_UID={uid}".encode() in environ and "pipe_write" in wchan:  # anon_pipe_write
                return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"no dockersh for uid {uid} blocked writing")


def test_a_client_that_never_reads_cannot_hold_the_users_lock(
        dockersh_config: ConfigWriter, make_user: UserFactory, sshd: SshdFactory) -> None:
    """A long warning from the user's own file fills the session's stderr pipe (a zero-window
    client never drains it); a login that then wrote its "recreating" notice with the lock
    held blocked forever, and `dockersh stop` timed out. Lock-held output never blocks now."""
    # forwarding = false: sshd's PAM step (pam_dockersh.so) would otherwise recreate the stale
    # container itself, quietly, before the login shell gets to write its notice.
    base = '[docker]\nlock_timeout = "5s"\n[session]\nforwarding = false\n' + DEFAULT_TEST_CONFIG
    config = dockersh_config(base)
    user = make_user()
    server = sshd()
    first = server.ssh(user, "true")
    assert first.returncode == 0, (first.stdout, first.stderr)
    before = containers_of(user.name)
    dockersh_config(base + 'env = { CHANGED = "1" }\n')  # stale: the next login recreates
    warning_of_length(user, str(config), 65536 - 40)  # the pipe full but for 40 bytes
    assert user.key is not None
    transport = ZeroWindowTransport(socket.create_connection(("127.0.0.1", server.port)))
    try:
        transport.start_client(timeout=10)
        transport.auth_publickey(user.name, paramiko.Ed25519Key.from_private_key_file(
            str(user.key)))
        transport.open_session().exec_command("true")
        login = blocked_writing(user.uid)
        began = time.monotonic()
        stop = subprocess.run([ENTRY, "stop", user.name], env={"PATH": SAFE_PATH},
                              capture_output=True, text=True, timeout=60, check=False)
        assert (stop.returncode, time.monotonic() - began < 4) == (0, True), stop.stderr
        assert containers_of(user.name) not in ([], before)  # the login did recreate it
    finally:
        transport.close()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{login}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("opened", ["read-only", "O_PATH"])
def test_a_stderr_the_caller_cannot_write_is_never_written_by_root(
        opened: str, dockersh_config: ConfigWriter, make_user: UserFactory,
        tmp_path: Path) -> None:
    """The notices of a login holding the user's lock went through root's write-mode reopen of
    fd 2: a member with a host shell who started the front with fd 2 a read-only or O_PATH
    descriptor of a root file (/etc/shadow, /etc/profile) had root overwrite its start. Only a
    pipe or a terminal the caller can already write is reopened now."""
    dockersh_config(DEFAULT_TEST_CONFIG)
    user = make_user()
    first = as_user(user, ["-c", "true"])
    assert first.returncode == 0, first.stderr
    before = containers_of(user.name)
    dockersh_config(DEFAULT_TEST_CONFIG + 'env = { CHANGED = "1" }\n')  # stale: recreated
    victim = tmp_path / "root-only"
    victim.write_bytes(b"root's own file\n")
    victim.chmod(0o600 if opened == "O_PATH" else 0o644)
    fd = os.open(victim, os.O_PATH if opened == "O_PATH" else os.O_RDONLY)
    try:
        login = subprocess.run(user_argv(user, ["-c", "echo in"]), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=fd, timeout=120, check=False)
    finally:
        os.close(fd)
    assert (login.returncode, login.stdout) == (0, b"in\n")
    assert victim.read_bytes() == b"root's own file\n"
    assert containers_of(user.name) not in ([], before)  # recreated: it wrote its notice


@pytest.mark.parametrize("mode", ["docker", "nsenter"])
def test_a_command_that_is_not_utf8_is_passed_exactly_or_refused(
        dockersh_config: ConfigWriter, make_user: UserFactory, sshd: SshdFactory,
        mode: str) -> None:
    """The byte 0xff in an ssh command: nsenter mode hands it over exactly; docker mode's
    Engine API (JSON, UTF-8) would turn it into U+FFFD, a different command, so it refuses."""
    dockersh_config(f'[session]\nexec = "{mode}"\n' + DEFAULT_TEST_CONFIG)
    user = make_user()
    done = sshd().ssh(user, "printf '\udcff' | od -An -tx1")  # str → bytes: surrogateescape
    if mode == "nsenter":
        assert (done.returncode, done.stdout.split(), done.stderr) == (0, [b"ff"], b"")
    else:
        assert (done.returncode, done.stdout) == (125, b""), done
        assert done.stderr == (b"dockersh: the command is not valid UTF-8, which docker mode "
                               b'cannot pass exactly; use UTF-8 (or [session] exec = "nsenter")\n')
    assert sshd().ssh(user, "printf '\\377' | od -An -tx1").stdout.split() == [b"ff"]


def test_wrong_password_for_another_user(dockersh_config: ConfigWriter, make_user: UserFactory,
                                         host_marker: Path) -> None:
    """`dockersh --user B` by A: B's password through PAM; a wrong one ends it cleanly."""
    a = make_user()
    b = make_user(password="Right-Pass-42")
    argv = user_argv(a, ["--user", b.name, "-c", f"touch {host_marker}; id -un"],
                     env={"PATH": "/usr/bin:/bin", "TERM": "dumb"})
    child = pexpect.spawn(argv[0], argv[1:], timeout=30)
    try:
        child.expect(f"Password for {b.name}: ")
        child.sendline("wrong-password")
        child.expect("dockersh: authentication failed, try again")
        child.expect(f"Password for {b.name}: ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 125
    text = (child.before or b"").decode()
    assert f"dockersh: authentication failed for {b.name}" in text
    assert containers_of(b.name) == []
    # The right password does open B's session (so the refusal above was PAM's), and without
    # B's live agent: its socket is B's, in B's 0700 directory as sshd makes them, but a
    # password is not B's keys (A finds the path with ls and ps, root opens it regardless).
    agent_dir = Path(f"/tmp/ssh-{secrets.token_hex(5)}")
    as_b = ["setpriv", f"--reuid={b.uid}", f"--regid={b.gid}", "--clear-groups"]
    run([*as_b, "mkdir", "-m", "700", str(agent_dir)])
    agent = subprocess.Popen([*as_b, "ssh-agent", "-D", "-a", f"{agent_dir}/agent.1"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    argv = user_argv(a, ["--user", b.name, "-c", 'id -un; echo "S=${SSH_AUTH_SOCK:-none}"'],
                     env={"PATH": "/usr/bin:/bin", "TERM": "dumb",
                          "SSH_AUTH_SOCK": f"{agent_dir}/agent.1"})
    try:
        deadline = time.monotonic() + 10
        while not Path(f"{agent_dir}/agent.1").is_socket():
            assert agent.poll() is None and time.monotonic() < deadline, "no ssh-agent"
            time.sleep(0.05)
        child = pexpect.spawn(argv[0], argv[1:], timeout=60)
        try:
            child.expect(f"Password for {b.name}: ")
            child.sendline("Right-Pass-42")
            child.expect(pexpect.EOF)
        finally:
            child.close()
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        shutil.rmtree(agent_dir, ignore_errors=True)
    out = (child.before or b"").decode()
    assert child.exitstatus == 0 and b.name in out, out
    assert "S=none" in out, out


class PrivateDockerd:
    """A dockerd of this test's own (own socket, data, exec root; no networking), so that
    stopping it takes no one else's containers down."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.log = root / "dockerd.log"
        self.bridge = f"dsec{secrets.token_hex(3)}"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run(["docker", "-H", self.host, *args], **kwargs)

    def start(self) -> None:
        (self.root / "daemon.json").write_text("{}\n")
        with self.log.open("ab") as log:
            # Its own bridge: with "--bridge none" dockerd deletes the host's docker0 (the
            # one the real daemon uses) when it starts. No iptables, no masquerading.
            self.proc = subprocess.Popen(
                ["dockerd", "--config-file", str(self.root / "daemon.json"),
                 "--host", self.host, "--data-root", str(self.root / "data"),
                 "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "pid"),
                 "--bridge", self.bridge, "--iptables=false", "--ip-masq=false",
                 "--ip-forward=false"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.cli("info", check=False, timeout=20).returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"private dockerd did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def private_dockerd(test_image: str) -> Iterator[PrivateDockerd]:
    root = Path(tempfile.mkdtemp(prefix="dsec-dockerd-", dir="/var/tmp"))
    daemon = PrivateDockerd(root)
    docker0 = Path("/sys/class/net/docker0/ifindex")
    before = docker0.read_text() if docker0.exists() else None
    run(["ip", "link", "add", daemon.bridge, "type", "bridge"])
    try:
        run(["ip", "addr", "add", "10.213.77.1/24", "dev", daemon.bridge])
        daemon.start()
        save = subprocess.Popen(["docker", "save", test_image], stdout=subprocess.PIPE)
        assert save.stdout is not None
        subprocess.run(["docker", "-H", daemon.host, "load", "-q"], stdin=save.stdout,
                       capture_output=True, check=True, timeout=120)
        assert save.wait(timeout=60) == 0
        yield daemon
    finally:
        if daemon.proc is not None:
            ids = daemon.cli("ps", "-aq", check=False, timeout=30).stdout.split()
            if ids:
                daemon.cli("rm", "-f", *ids, check=False, timeout=120)
        daemon.stop()
        run(["umount", "-R", str(root / "exec")], check=False, timeout=30)
        shutil.rmtree(root, ignore_errors=True)
        run(["ip", "link", "del", daemon.bridge], check=False)
    after = docker0.read_text() if docker0.exists() else None
    assert before == after, "the private dockerd touched the host's docker0"


def test_docker_down(installed: Installation, make_user: UserFactory,
                     private_dockerd: PrivateDockerd, host_marker: Path, tmp_path: Path) -> None:
    """A real dockerd goes away with the user's container in it, and comes back. It is a
    daemon of this test's own: stopping the host's would take every other user's (and every
    concurrent test run's) containers down with it."""
    config = tmp_path / "config.toml"
    config.write_text(f'[docker]\nhost = "{private_dockerd.host}"\n[container]\n'
                      'network = "none"\n' + DEFAULT_TEST_CONFIG.split("\n", 2)[2])
    user = make_user()
    up = as_root_for(user, config, ["-c", "id -un"])
    assert (up.returncode, up.stdout) == (0, f"{user.name}\n".encode()), up
    private_dockerd.stop()  # the daemon goes away with the user's container in it
    for _ in range(2):
        line = one_error_line(as_root_for(user, config, ["-c", f"touch {host_marker}"]))
        assert line.startswith(f"dockersh: cannot reach the Docker engine at "
                               f"{private_dockerd.sock}")
        assert line.endswith("is dockerd running?")
    private_dockerd.start()  # back: the stopped container is started again
    back = as_root_for(user, config, ["-c", "id -un"])
    assert (back.returncode, back.stdout) == (0, f"{user.name}\n".encode()), back


# --- names -----------------------------------------------------------------------------------


def old_cap(name: str) -> str:
    """How names were shortened before the fix: first 52 characters, '-', 10 hex digits."""
    return f"{name[:52]}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def colliding_pair() -> tuple[str, str]:
    """Two valid user names whose container names were the same before the fix."""
    upper = "".join(secrets.choice("BCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(19))
    long = "a" + upper
    escaped = "dockersh-a" + "".join(f"_{ord(c):02x}" for c in upper)
    capped = old_cap(escaped).removeprefix("dockersh-")
    short = re.sub(r"_([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), capped)
    return long, short


def test_names_with_dots_dashes_digits_case_and_32_characters(
    dockersh_config: ConfigWriter, make_user: UserFactory,
) -> None:
    tag = secrets.token_hex(3)
    names = [f"d.{tag}-x", f"9{tag}x", f"Up{tag}Case", f"l{tag}".ljust(32, "o"),
             *colliding_pair()]
    users = [make_user(name=name) for name in names]
    seen = set()
    for user in users:
        done = as_user(user, ["-c", "id -un; id -u; echo ~"])
        assert done.returncode == 0, (user.name, done)
        assert done.stdout.decode().split() == [user.name, str(user.uid), str(user.home)]
        ids = containers_of(user.name)
        assert len(ids) == 1, (user.name, ids)
        info = json.loads(run(["docker", "inspect", ids[0]]).stdout)[0]
        name = info["Name"].lstrip("/")
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name) and len(name) <= 63
        assert info["Config"]["Labels"]["dockersh.uid"] == str(user.uid)
        seen.add(name)
    assert len(seen) == len(users)


def test_foreign_container_holding_the_name(dockersh_config: ConfigWriter, make_user: UserFactory,
                                            test_image: str, host_marker: Path) -> None:
    user = make_user()
    name = f"dockersh-{user.name}"
    try:
        foreign = run(["docker", "run", "-d", "--name", name, "--label", "dockersh.test=foreign",
                       test_image, "sleep", "300"]).stdout.strip()
        line = one_error_line(as_user(user, ["-c", f"touch /tmp/pwned {host_marker}"]))
        assert line.startswith(f"dockersh: a container named {name} exists but is not "
                               f"dockersh's container for {user.name}; refusing to touch it")
        info = json.loads(run(["docker", "inspect", name]).stdout)[0]
        assert info["Id"] == foreign and info["State"]["Running"]
        touched = run(["docker", "exec", name, "ls", "/tmp/pwned"], check=False)
        assert touched.returncode != 0  # nothing ran in it either
    finally:
        run(["docker", "rm", "-f", name], check=False)


def test_user_not_in_group_dockersh_is_refused(dockersh_config: ConfigWriter,
                                               make_user: UserFactory) -> None:
    """sudo itself refuses someone outside the group; the privileged part checks it too."""
    user = make_user(in_dockersh=False)
    done = as_user(user, ["-c", "id"])
    assert done.returncode != 0 and done.stdout == b""
    assert containers_of(user.name) == []
    assert user.name not in grp.getgrnam("dockersh").gr_mem
