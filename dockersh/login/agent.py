"""``ssh -A`` into the container: that session's agent, and nobody else's, at a path inside.

sshd makes the forwarded agent's socket in the host's /tmp (/tmp/ssh-XXXXXXXXXX/agent.PID,
OpenSSH < 10.1), which the container cannot see. So the monitor makes a socket inside the
container, in a fresh directory of the user's own in the container's /tmp (made as the user,
never as root: that /tmp is the user's to fill with symlinks), hands its path to the session as
SSH_AUTH_SOCK, and relays each connection to sshd's socket on the host, for as long as the
session lives. sshd's socket is checked before it is used: a socket the user owns, in a 0700
directory the user owns under /tmp/ssh-* (sshd's own layout; the user has no host shell to
plant another). The check pins the inode (an O_PATH fd, opened without following a link), and
every connection goes to that inode through /proc/self/fd: the directory is the user's, so a
name there could be swapped for a link to a root-only socket (/run/docker.sock) between a check
by path and a root connect() by path. Only sessions whose client forwards an agent pay for
this (a thread and one fork).
"""

from __future__ import annotations

import os
import socket
import stat
import sys

from dockersh.enter import nsenter
from dockersh.enter.initproc import open_init
from dockersh.login import jail

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from dockersh.backend.base import Container
    from dockersh.login.identity import User
    from dockersh.plan.sessionplan import SessionPlan

CHUNK = 65536
#: Agent connections open at once (ssh-add, git and an IDE use one or two each): more are
#: closed at once, so that the user cannot fill the monitor's descriptor table, which its
#: end-of-session record needs.
MAX_CONNECTIONS = 64


def host_socket(path: str, user: User) -> int | None:
    """An O_PATH fd of sshd's agent socket for this session, or None when ``path`` is not one."""
    directory, name = os.path.split(path)
    if not directory.startswith("/tmp/ssh-") or os.path.dirname(directory) != "/tmp":
        return None
    pinned = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        dfd = os.open(jail.session_path(directory), pinned | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        d = os.fstat(dfd)
        if not (d.st_uid == user.uid and stat.S_IMODE(d.st_mode) == 0o700):
            return None
        fd = os.open(name, pinned, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    s = os.fstat(fd)
    if stat.S_ISSOCK(s.st_mode) and s.st_uid == user.uid:
        return fd
    os.close(fd)
    return None


def listen_inside(container: Container, plan: SessionPlan) -> tuple[socket.socket, str]:
    """A listening socket in a new directory of the container's /tmp, made by a child that
    entered the container's mount namespace and became the user; and its path."""
    proc, _ = open_init(container.pid, container.id)
    try:
        mnt = os.open("ns/mnt", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    finally:
        os.close(proc)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = os.fork()
    if child == 0:
        status = 1
        try:
            ours.close()
            nsenter.setns(mnt, "mnt")
            nsenter.undumpable()  # the monitor's descriptors are still open here
            os.setgroups(plan.groups)
            os.setgid(plan.gid)
            os.setuid(plan.uid)
            directory = f"/tmp/dockersh-agent.{os.urandom(6).hex()}"
            os.mkdir(directory, 0o700)  # fails on anything already there, a symlink too
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(f"{directory}/agent.sock")
            listener.listen(16)
            socket.send_fds(theirs, [f"{directory}/agent.sock".encode()], [listener.fileno()])
            status = 0
        finally:
            os._exit(status)
    theirs.close()
    os.close(mnt)
    try:
        message, fds, _, _ = socket.recv_fds(ours, 4096, 1)
        for fd in fds:  # not the session's: recv_fds drops its flags (MSG_CMSG_CLOEXEC) on 3.11
            os.set_inheritable(fd, False)
    finally:
        ours.close()
        os.waitpid(child, 0)
    if not fds:
        raise OSError("could not make the agent socket in the container")
    return socket.socket(fileno=fds[0]), message.decode()


def relay(listener: socket.socket, target: int) -> None:
    """Accept connections inside, and pass each one to sshd's socket, the inode ``target`` pins
    (in a thread: the monitor's own thread is busy with the session)."""
    import selectors

    pinned = f"/proc/self/fd/{target}"
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    peers: dict[socket.socket, socket.socket] = {}
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                try:
                    inside, _ = listener.accept()
                    if len(peers) >= 2 * MAX_CONNECTIONS:
                        inside.close()
                        continue
                    outside = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                except OSError:  # out of descriptors after all: this one waits
                    continue
                try:
                    outside.connect(pinned)
                except OSError:  # the client's agent went away: this connection gets EOF
                    inside.close()
                    outside.close()
                    continue
                peers[inside], peers[outside] = outside, inside
                sel.register(inside, selectors.EVENT_READ)
                sel.register(outside, selectors.EVENT_READ)
                continue
            if sock not in peers:  # closed with its peer earlier in this batch of events
                continue
            try:
                data = sock.recv(CHUNK)
                if data:
                    peers[sock].sendall(data)
                    continue
            except OSError:
                pass
            other = peers.pop(sock)
            peers.pop(other, None)
            for end in (sock, other):
                sel.unregister(end)
                end.close()


def forward(path: str, user: User, container: Container, plan: SessionPlan) -> str | None:
    """Start relaying the session's agent; the path for SSH_AUTH_SOCK inside, or None (and one
    line) when there is no usable agent."""
    target = host_socket(path, user)
    if target is None:
        return None
    try:
        listener, inside = listen_inside(container, plan)
    except OSError as exc:
        os.close(target)
        print(f"dockersh: agent forwarding is not available ({exc})", file=sys.stderr,
              flush=True)
        return None
    import threading

    threading.Thread(target=relay, args=(listener, target), daemon=True).start()
    return inside
