"""Browser sessions of the unprivileged server: cookies, CSRF tokens, idle and absolute timeouts.

A session is a random token in a cookie (HttpOnly, Secure, SameSite=Strict) naming the user, the
broker's grant and a CSRF token that every state-changing request must carry. Memory only: a
restart of the service logs everybody out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockersh.web.terminals import Terminal

COOKIE = "dockersh_session"
LOGIN_COOKIE = "dockersh_login"
COOKIE_FLAGS = {"httponly": True, "secure": True, "samesite": "Strict", "path": "/"}


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


class WebSession:
    def __init__(self, user: str, grant: str) -> None:
        self.token = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.user, self.grant = user, grant
        self.created = self.seen = time.monotonic()
        self.terminal: Terminal | None = None

    def touch(self) -> None:
        self.seen = time.monotonic()


class Sessions:
    def __init__(self, idle: float, absolute: float) -> None:
        self.idle, self.absolute = idle, absolute
        self.by_token: dict[str, WebSession] = {}

    def create(self, user: str, grant: str) -> WebSession:
        session = WebSession(user, grant)
        self.by_token[session.token] = session
        return session

    def alive(self, session: WebSession) -> bool:
        now = time.monotonic()
        return now - session.seen < self.idle and now - session.created < self.absolute

    def get(self, token: str | None) -> WebSession | None:
        """The live session of a cookie (touched), or None."""
        session = self.by_token.get(token or "")
        if session is None or not self.alive(session):
            return None
        session.touch()
        return session

    def expired(self) -> list[WebSession]:
        """Sessions past a timeout, forgotten here; the caller ends their terminals."""
        gone = [s for s in self.by_token.values() if not self.alive(s)]
        for session in gone:
            del self.by_token[session.token]
        return gone

    def end(self, session: WebSession) -> None:
        self.by_token.pop(session.token, None)


class BasicCache:
    """HTTP Basic credentials PAM accepted, for a short while: an API client sends them with
    every request, and a PAM round (and a password hash) per keystroke is too much. Keys are
    salted digests: no password is kept in memory."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.salt = secrets.token_bytes(32)
        self.entries: dict[bytes, tuple[str, float]] = {}

    def key(self, user: str, password: str) -> bytes:
        return hashlib.sha256(self.salt + user.encode() + b"\0" + password.encode()).digest()

    def get(self, user: str, password: str) -> str | None:
        """The grant for these credentials, when PAM accepted them recently."""
        entry = self.entries.get(self.key(user, password))
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, user: str, password: str, grant: str) -> None:
        now = time.monotonic()
        self.entries = {k: v for k, v in self.entries.items() if v[1] > now}
        self.entries[self.key(user, password)] = (grant, now + self.lifetime)
