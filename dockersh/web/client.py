"""The server's side of the broker's socket, for asyncio: conversations and opening sessions."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from typing import Any

from dockersh.web import channel

#: Longer than the broker's own wait for an answer, so that the broker times out first.
TIMEOUT = 130.0
Opened = tuple[dict[str, Any], int | None]


class BrokerGone(Exception):
    pass


class Conversation:
    """One PAM transaction in the broker, seen from here: events until "done"."""

    def __init__(self, broker: BrokerClient, user: str) -> None:
        self.id = secrets.token_urlsafe(24)
        self.broker, self.user = broker, user
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.messages: list[str] = []

    async def next(self) -> dict[str, Any]:
        """The next prompt or the outcome; PAM's messages in between go to ``messages``."""
        while True:
            try:
                event = await asyncio.wait_for(self.events.get(), TIMEOUT)
            except TimeoutError:
                event = {"event": "done", "ok": False, "reason": "timeout"}
            if event.get("event") != "message":
                if event.get("event") == "done":
                    self.broker.waiters.pop(self.id, None)
                return event
            self.messages.append(str(event.get("text", "")))

    def answer(self, text: str | None) -> None:
        try:
            self.broker.send({"op": "answer", "conv": self.id, "text": text})
        except (BrokerGone, OSError):
            pass  # next() times out and says so


class BrokerClient:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.waiters: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.opened: dict[str, asyncio.Future[Opened]] = {}
        self.gone = asyncio.Event()
        asyncio.get_running_loop().add_reader(sock, self._readable)

    def _readable(self) -> None:
        try:
            got = channel.recv(self.sock)
        except BlockingIOError:
            return
        except OSError:
            got = None
        if got is None:
            asyncio.get_running_loop().remove_reader(self.sock)
            self.gone.set()
            return
        message, fd = got
        key = str(message.get("conv") or message.get("req") or "")
        future = self.opened.pop(key, None)
        if future is not None and not future.done():
            future.set_result((message, fd))
            return
        if fd is not None:
            os.close(fd)
        events = self.waiters.get(key)
        if events is not None:
            events.put_nowait(message)

    def send(self, message: dict[str, Any]) -> None:
        if self.gone.is_set():
            raise BrokerGone()
        channel.send(self.sock, message)

    def converse(self, user: str, client: list[Any], preset: str | None = None) -> Conversation:
        """Start PAM for ``user``; ``preset`` answers the one password prompt (HTTP Basic)."""
        conversation = Conversation(self, user)
        self.waiters[conversation.id] = conversation.events
        self.send({"op": "auth", "conv": conversation.id, "user": user, "client": client,
                   "preset": preset})
        return conversation

    async def open(self, grant: str, rows: int, cols: int, client: list[Any]) -> int:
        """A new session's pty master; raises ``OSError`` with the broker's reason."""
        req = secrets.token_urlsafe(16)
        future: asyncio.Future[Opened] = asyncio.get_running_loop().create_future()
        self.opened[req] = future
        self.send({"op": "open", "req": req, "grant": grant, "rows": rows, "cols": cols,
                   "client": client})
        try:
            message, fd = await asyncio.wait_for(future, TIMEOUT)
        except TimeoutError:
            raise OSError("the broker did not answer") from None
        finally:
            self.opened.pop(req, None)
        if fd is None:
            raise OSError(str(message.get("text", "the broker refused")))
        return fd

    def revoke(self, grant: str) -> None:
        try:
            self.send({"op": "revoke", "grant": grant})
        except (BrokerGone, OSError):
            pass
