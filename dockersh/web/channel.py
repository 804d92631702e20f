"""The broker's socket: JSON messages on a SOCK_SEQPACKET pair, pty masters riding along.

One message per packet (SEQPACKET keeps the boundaries), at most ``MAX`` bytes, and at most one
file descriptor each (SCM_RIGHTS). Used by both sides, so it imports nothing of aiohttp.
"""

from __future__ import annotations

import array
import json
import socket
from typing import Any

MAX = 65536


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, message: dict[str, Any], fd: int | None = None) -> None:
    data = json.dumps(message).encode()
    if len(data) > MAX:
        raise ValueError("message too large")
    fds = [] if fd is None else [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    sock.sendmsg([data], fds)


def recv(sock: socket.socket) -> tuple[dict[str, Any], int | None] | None:
    """The next message and the descriptor sent with it; None when the other side is gone.

    Anything that is not one JSON object is dropped (and any descriptor with it closed)."""
    data, ancdata, _, _ = sock.recvmsg(MAX, socket.CMSG_SPACE(array.array("i").itemsize))
    if not data:
        return None
    fd: int | None = None
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for extra in fds[1:]:
                socket.close(extra)
            fd = fds[0] if fds else None
    try:
        message = json.loads(data)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        if fd is not None:
            socket.close(fd)
        return {}, None
    return message, fd
