"""A real OpenSSH server on 127.0.0.1 with a config of its own, and an ssh client for it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .cmd import run, tail
from .users import LinuxUser

SSHD = "/usr/sbin/sshd"
#: The drop-in install.sh puts there (DESIGN.md); every test server includes it.
DROPIN = Path("/etc/ssh/sshd_config.d/dockersh.conf")
HOST = "127.0.0.1"
FIRST_PORT = 2222

#: Every server started by this process, for the failure report.
RUNNING: list[SshServer] = []
_ports_taken: set[int] = set()


def default_options(port: int, workdir: Path) -> dict[str, str]:
    """The global part of the config; a test may override any of these by keyword."""
    return {
        "Port": str(port),
        "ListenAddress": HOST,
        "PidFile": str(workdir / "sshd.pid"),
        "HostKey": str(workdir / "ssh_host_ed25519_key"),
        "LogLevel": "VERBOSE",
        "UsePAM": "yes",
        "PubkeyAuthentication": "yes",
        "AuthorizedKeysFile": ".ssh/authorized_keys",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "PermitRootLogin": "no",
        "PrintMotd": "no",
        "X11Forwarding": "no",
        # Room for tests that open many connections at once.
        "MaxStartups": "100:30:200",
        "MaxSessions": "64",
        "LoginGraceTime": "30",
        "Subsystem": "sftp /usr/lib/openssh/sftp-server",
        "AcceptEnv": "LANG LC_*",
    }


def render_config(
    port: int, workdir: Path, extra: Sequence[str], options: Mapping[str, str]
) -> str:
    """The config text: the global options, then the Include, then the extra lines.

    sshd keeps the first value it reads for a keyword, so overrides replace defaults in place
    rather than being appended. The Include comes before any Match. extra lines go last; when
    they do not open with a Match line, a `Match all` is put before them.
    """
    merged = {**default_options(port, workdir), **options}
    lines = [f"{key} {value}" for key, value in merged.items()]
    lines.append(f"Include {DROPIN}")
    body = [line for line in extra if line.strip()]
    if body and not body[0].lstrip().lower().startswith("match "):
        lines.append("Match all")
    lines.extend(body)
    return "\n".join(lines) + "\n"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    """2222 when free, else the next free one above it."""
    for port in range(FIRST_PORT, FIRST_PORT + 200):
        if port not in _ports_taken and _port_is_free(port):
            return port
    raise AssertionError(f"no free port in {FIRST_PORT}-{FIRST_PORT + 199} on {HOST}")


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


@dataclass
class SshServer:
    """One running sshd -D. Stop it with stop(), which signals the PID from its PidFile."""

    port: int
    workdir: Path
    config: Path
    log: Path
    pidfile: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def ssh_argv(
        self,
        user: LinuxUser,
        cmd: str | None = None,
        *,
        tty: bool = False,
        env: Mapping[str, str] | None = None,
        extra_opts: Sequence[str] = (),
    ) -> list[str]:
        """The ssh client's argv (no config files, no agent, only the user's key)."""
        if user.key is None:
            raise ValueError(f"{user.name} was made without a key")
        argv = [
            "ssh", "-F", "none", "-i", str(user.key),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
            "-p", str(self.port), "-tt" if tty else "-T",
        ]
        for name in env or {}:
            argv += ["-o", f"SendEnv={name}"]
        argv += [*extra_opts, "--", f"{user.name}@{HOST}"]
        if cmd is not None:
            argv.append(cmd)
        return argv

    def ssh(
        self,
        user: LinuxUser,
        cmd: str | None = None,
        *,
        tty: bool = False,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        extra_opts: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run cmd (None: a login session) as user over ssh; stdout and stderr captured as bytes.

        stdin is input, or /dev/null. env is set in the client's environment and offered with
        SendEnv (this server accepts LANG and LC_*). The remote exit status is the returncode
        (255 when ssh itself failed).
        """
        client_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root"}
        client_env.update(env or {})
        return subprocess.run(
            self.ssh_argv(user, cmd, tty=tty, env=env, extra_opts=extra_opts),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            env=client_env,
            timeout=timeout,
            check=False,
        )

    def spawn(self, user: LinuxUser, cmd: str, *, tty: bool = False) -> subprocess.Popen[bytes]:
        """A session left running, stdin, stdout and stderr pipes (without a terminal, closing
        stdin is the client's EOF). The caller ends it, by its PID."""
        return subprocess.Popen(self.ssh_argv(user, cmd, tty=tty), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log, lines)

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        _ports_taken.discard(self.port)
        if self in RUNNING:
            RUNNING.remove(self)


def start_sshd(
    workdir: Path,
    extra: Sequence[str] = (),
    options: Mapping[str, str] | None = None,
    *,
    attempts: int = 5,
    program: str = SSHD,
) -> SshServer:
    """Start `sshd -D -f CONFIG -E LOG` on a free port of 127.0.0.1 and wait until it listens.

    program: the path sshd is started by; its base name is sshd's PAM service (a link to sshd
    named sshd-X uses /etc/pam.d/sshd-X).
    """
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    hostkey = workdir / "ssh_host_ed25519_key"
    if not hostkey.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey])
    config = workdir / "sshd_config"
    log = workdir / "sshd.log"
    failures = []
    for _ in range(attempts):
        port = _free_port()
        config.write_text(render_config(port, workdir, extra, options or {}))
        run([program, "-t", "-f", config])  # a config error is reported here, plainly
        (workdir / "sshd.pid").unlink(missing_ok=True)
        process = subprocess.Popen(
            [program, "-D", "-f", str(config), "-E", str(log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        server = SshServer(port, workdir, config, log, workdir / "sshd.pid", process)
        deadline = time.monotonic() + 10
        while server.alive() and time.monotonic() < deadline:
            if _listening(port) and server.pidfile.exists():
                _ports_taken.add(port)
                RUNNING.append(server)
                return server
            time.sleep(0.05)
        failures.append(f"port {port}: exit status {process.poll()}")
        server.stop()
        _ports_taken.add(port)  # something else has it; do not try it again
    raise AssertionError(
        f"sshd did not start: {'; '.join(failures)}\n--- {log}\n{tail(log)}"
    )


class SshdFactory(Protocol):
    def __call__(
        self, extra: Sequence[str] = (), options: Mapping[str, str] | None = None
    ) -> SshServer: ...
