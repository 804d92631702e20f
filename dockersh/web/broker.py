"""The root half of ``dockersh web``: PAM conversations and starting sessions, nothing else.

It answers the unprivileged server over a socketpair (``channel``). It never parses HTTP and
never runs a user's command itself: a session is ``dockersh --user NAME`` (the installed
privileged entry, so the same config, audit, limits and refusals as an SSH login) on a new pty
whose master goes to the server. It opens sessions only with a grant it issued after PAM said
yes, for a member of group dockersh, so a compromised server reaches only the users who logged
in through it, and guesses passwords no faster than the limiter allows.
"""

from __future__ import annotations

import fcntl
import grp
import ipaddress
import os
import queue
import secrets
import socket
import struct
import subprocess
import termios
import threading
import time
from typing import Any

from dockersh.errors import DockershError
from dockersh.login import identity
from dockersh.paths import ENTRY, GROUP
from dockersh.web import channel, pamconv
from dockersh.web.limiter import Limiter

SETSID = "/usr/bin/setsid"
#: How long a prompt waits for the browser's answer.
ANSWER_TIMEOUT = 120.0
#: PAM conversations at once (each is a thread, and pam_faildelay holds it for seconds).
MAX_CONVERSATIONS = 32
SESSION_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def refusal(name: str) -> str | None:
    """Why ``name`` may not have a web session (the refusals of an SSH login), or None."""
    try:
        user = identity.by_name(name)
    except DockershError as exc:
        return exc.message
    if user.uid == 0:
        return "root has no dockersh container"
    if GROUP not in user.group_names:
        return f"{user.name} is not in group {GROUP}; ask the administrator"
    return None


def client_address(client: Any) -> tuple[str, int]:
    """The web client's address and port as the server reported them, checked."""
    if not (isinstance(client, list) and len(client) == 2 and isinstance(client[1], int)):
        raise ValueError("bad client")
    return str(ipaddress.ip_address(client[0])), client[1]


def spawn(name: str, rows: int, cols: int, connection: str, config_path: str) -> int:
    """``dockersh --user NAME`` on a new pty, as sshd would start a login; returns the master."""
    user = identity.by_name(name)
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            tty_gid = grp.getgrnam("tty").gr_gid
        except KeyError:
            tty_gid = user.gid
        # As sshd does: the user's own terminal (nsenter sessions run on it as the user).
        os.fchown(slave, user.uid, tty_gid)
        os.fchmod(slave, 0o620)
        env = {"PATH": SESSION_PATH, "TERM": "xterm-256color", "COLORTERM": "truecolor",
               "LANG": "C.UTF-8", "SSH_CONNECTION": connection}
        # setsid --ctty: a new session whose controlling terminal is the pty (job control,
        # hangup when the page's grace period ends).
        argv = [SETSID, "--ctty", ENTRY, "--config", config_path, "--user", user.name]
        proc = subprocess.Popen(argv, stdin=slave,
                                stdout=slave, stderr=slave, env=env, cwd="/", close_fds=True)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    threading.Thread(target=proc.wait, daemon=True).start()  # reaps it
    return master


class Broker:
    def __init__(self, sock: socket.socket, limiter: Limiter, grant_lifetime: float,
                 local: tuple[str, int], config_path: str) -> None:
        self.sock, self.limiter, self.local = sock, limiter, local
        self.config_path = config_path
        self.grant_lifetime = grant_lifetime
        self.grants: dict[str, tuple[str, float]] = {}
        self.answers: dict[str, queue.Queue[str | None]] = {}
        self.lock = threading.Lock()

    def reply(self, message: dict[str, Any], fd: int | None = None) -> None:
        with self.lock:
            try:
                channel.send(self.sock, message, fd)
            except OSError:
                pass  # the server is gone; serve() ends on its EOF

    def serve(self) -> None:
        """Until the server closes its end."""
        while (got := channel.recv(self.sock)) is not None:
            message, fd = got
            if fd is not None:
                os.close(fd)  # the server never has a reason to send one
            try:
                self.handle(message)
            except (ValueError, TypeError, KeyError):
                pass  # a malformed request gets no answer; the server times it out

    def handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "auth":
            conv, user, preset = str(message["conv"]), str(message["user"]), message.get("preset")
            if preset is not None and not (isinstance(preset, str)):
                raise ValueError("bad preset")
            address = client_address(message["client"])[0]
            with self.lock:
                busy = len(self.answers) >= MAX_CONVERSATIONS or conv in self.answers
                if not busy:
                    self.answers[conv] = queue.Queue()
            if busy:
                self.reply({"conv": conv, "event": "done", "ok": False, "reason": "busy"})
                return
            threading.Thread(target=self.converse, args=(conv, user, address, preset),
                             daemon=True).start()
        elif op == "answer":
            answers = self.answers.get(str(message["conv"]))
            if answers is not None:
                text = message.get("text")
                answers.put(text if isinstance(text, str) else None)
        elif op == "open":
            self.open(message)
        elif op == "revoke":
            with self.lock:
                self.grants.pop(str(message["grant"]), None)

    def converse(self, conv: str, user: str, address: str, preset: str | None) -> None:
        """One PAM transaction, its prompts relayed (or, for HTTP Basic, the one password)."""
        answers = self.answers[conv]
        keys = (f"user:{user}", f"address:{address}")
        try:
            if self.limiter.locked(*keys):
                self.reply({"conv": conv, "event": "done", "ok": False, "reason": "locked"})
                return
            passwords = [] if preset is None else [preset]

            def ask(style: int, text: str) -> str | None:
                if preset is not None:
                    return passwords.pop() if style == pamconv.ECHO_OFF and passwords else None
                if style in (pamconv.ERROR_MSG, pamconv.TEXT_INFO):
                    self.reply({"conv": conv, "event": "message", "text": text})
                    return None
                self.reply({"conv": conv, "event": "prompt", "text": text,
                            "echo": style == pamconv.ECHO_ON})
                try:
                    return answers.get(timeout=ANSWER_TIMEOUT)
                except queue.Empty:
                    return None

            if not (user and len(user) <= 256 and pamconv.authenticate(user, ask, address)):
                self.limiter.failed(*keys)
                self.reply({"conv": conv, "event": "done", "ok": False, "reason": "failed"})
                return
            why = refusal(user)
            if why is not None:
                self.reply({"conv": conv, "event": "done", "ok": False, "reason": "refused",
                            "text": why})
                return
            grant = secrets.token_urlsafe(32)
            now = time.monotonic()
            with self.lock:
                for key in [k for k, (_, until) in self.grants.items() if until <= now]:
                    del self.grants[key]
                self.grants[grant] = (user, now + self.grant_lifetime)
            self.reply({"conv": conv, "event": "done", "ok": True, "user": user,
                        "grant": grant})
        finally:
            with self.lock:
                self.answers.pop(conv, None)

    def open(self, message: dict[str, Any]) -> None:
        req = str(message["req"])
        with self.lock:
            user, until = self.grants.get(str(message["grant"]), ("", 0.0))
        rows, cols = int(message["rows"]), int(message["cols"])
        why = "not logged in" if until <= time.monotonic() else refusal(user)
        if why is None and not (0 < rows <= 1000 and 0 < cols <= 1000):
            why = "bad terminal size"
        if why is not None:
            self.reply({"req": req, "event": "error", "text": why})
            return
        address, port = client_address(message["client"])
        connection = f"{address} {port} {self.local[0]} {self.local[1]}"
        try:
            master = spawn(user, rows, cols, connection, self.config_path)
        except (OSError, DockershError) as exc:
            self.reply({"req": req, "event": "error", "text": f"cannot start a session: {exc}"})
            return
        try:
            self.reply({"req": req, "event": "opened"}, master)
        finally:
            os.close(master)
