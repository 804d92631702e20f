"""The agent relay with real unix sockets: each connection inside reaches the pinned socket, and
no more than MAX_CONNECTIONS at once (a user filling the monitor's descriptor table would cost
the session its end-of-session record)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from dockersh.login import agent


# The relay dying of an exception would end the session's agent: an error here.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_relay_serves_its_limit_of_connections_and_closes_more(tmp_path: Path) -> None:
    sshd = socket.socket(socket.AF_UNIX)
    sshd.bind(str(tmp_path / "agent.1"))
    sshd.listen(agent.MAX_CONNECTIONS + 8)
    inside = socket.socket(socket.AF_UNIX)
    inside.bind(str(tmp_path / "inside.sock"))
    inside.listen(agent.MAX_CONNECTIONS + 8)
    pinned = os.open(tmp_path / "agent.1", os.O_PATH | os.O_CLOEXEC)
    threading.Thread(target=agent.relay, args=(inside, pinned), daemon=True).start()
    clients, relayed = [], []
    for _ in range(agent.MAX_CONNECTIONS):
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(tmp_path / "inside.sock"))
        clients.append(client)
        relayed.append(sshd.accept()[0])
    extra = socket.socket(socket.AF_UNIX)
    extra.connect(str(tmp_path / "inside.sock"))
    extra.settimeout(10)
    assert extra.recv(1) == b""  # closed at once
    clients[0].sendall(b"request")
    relayed[0].settimeout(10)
    assert relayed[0].recv(64) == b"request"
    relayed[-1].sendall(b"answer")
    clients[-1].settimeout(10)
    assert clients[-1].recv(64) == b"answer"
    # Both ends of every pair close at once (their events come in one batch): the relay goes on.
    for sock in (*clients, *relayed, extra):
        sock.close()
    thread = [t for t in threading.enumerate() if t.name.endswith("(relay)")]
    late = socket.socket(socket.AF_UNIX)
    late.connect(str(tmp_path / "inside.sock"))
    sshd.settimeout(10)
    relayed_late = sshd.accept()[0]
    assert thread and thread[0].is_alive()
    for sock in (late, relayed_late, sshd):
        sock.close()
