"""The pty masters the broker hands over: bytes out to every attached client, input in, resizes.

A terminal outlives its page for ``grace`` seconds (a network blip, a reload): the page comes
back and asks for the output since the last byte it saw, from the last ``KEEP`` bytes. Closing
the master (grace over, logout, timeout) hangs up the session, as sshd does when a client goes.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import struct
import termios

KEEP = 256 * 1024
READ = 65536


class Terminal:
    def __init__(self, fd: int, user: str, grace: float) -> None:
        self.id = secrets.token_urlsafe(24)
        self.fd, self.user, self.grace = fd, user, grace
        self.buffer = bytearray()
        self.end = 0  # bytes read so far; the buffer holds the last len(buffer) of them
        self.listeners: set[asyncio.Queue[bytes | None]] = set()
        self.pending = bytearray()
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self.loop.add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, READ)
        except BlockingIOError:
            return
        except OSError:  # EIO: the session ended and the slave side is closed
            data = b""
        if not data:
            self.close()
            return
        self.end += len(data)
        self.buffer += data
        del self.buffer[:-KEEP]
        for listener in self.listeners:
            listener.put_nowait(data)

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.pending:
            self.loop.add_writer(self.fd, self._flush)
        self.pending += data

    def _flush(self) -> None:
        try:
            done = os.write(self.fd, self.pending)
        except BlockingIOError:
            return
        except OSError:
            done = len(self.pending)
        del self.pending[:done]
        if not self.pending:
            self.loop.remove_writer(self.fd)

    def resize(self, rows: int, cols: int) -> None:
        if not self.closed and 0 < rows <= 1000 and 0 < cols <= 1000:
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def attach(self, since: int = 0) -> tuple[asyncio.Queue[bytes | None], int, bytes]:
        """A queue of the output from now on (None at the end), and what came before it: the
        offset of its first byte and the bytes since ``since`` (or all that is kept)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        listener: asyncio.Queue[bytes | None] = asyncio.Queue()
        start = self.end - len(self.buffer)
        since = since if start <= since <= self.end else start
        if self.closed:
            listener.put_nowait(None)
        else:
            self.listeners.add(listener)
        return listener, since, bytes(self.buffer[since - start:])

    def detach(self, listener: asyncio.Queue[bytes | None]) -> None:
        self.listeners.discard(listener)
        if not self.listeners and not self.closed:
            if self.grace > 0:
                self.timer = self.loop.call_later(self.grace, self.close)
            else:
                self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self.loop.remove_reader(self.fd)
        if self.pending:
            self.loop.remove_writer(self.fd)
        os.close(self.fd)
        for listener in self.listeners:
            listener.put_nowait(None)
        self.listeners.clear()


class Terminals:
    """Every open terminal by id. ``get`` answers only for the terminal's own user."""

    def __init__(self) -> None:
        self.by_id: dict[str, Terminal] = {}

    def add(self, terminal: Terminal) -> Terminal:
        self.by_id = {k: t for k, t in self.by_id.items() if not t.closed}
        self.by_id[terminal.id] = terminal
        return terminal

    def get(self, terminal_id: str, user: str) -> Terminal | None:
        terminal = self.by_id.get(terminal_id)
        if terminal is None or terminal.closed or terminal.user != user:
            return None
        return terminal

    def close_all(self) -> None:
        for terminal in self.by_id.values():
            terminal.close()
