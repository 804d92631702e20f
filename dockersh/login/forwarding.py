"""``dockersh netns USER``: ready the user's container and hand its network namespace to sshd.

Run as root by the PAM module pam_dockersh.so (pam-module/pam_dockersh.c) from sshd's
privileged monitor when a member of group dockersh opens a session, with a socketpair on fd 3.
The module joins the namespace it gets, so every forward sshd makes afterwards (ssh -L, -D, -W,
-R) starts in the user's container's network: the host's loopback and networks are out of
reach. This is also where a first login creates the container: it must exist before sshd can
join its network.

The module's fast path reads /run/dockersh/netns/UID (written here) and needs no process; it
also says whether the container binds the host's home at its path ("H"), which sshd's jail then
holds (for unix-socket forwards). The key in it (the global config's identity and the user's
groups) makes a changed config or group membership a miss, so this decides again. ``[session]
forwarding = false`` for the user (and any failure) gives sshd an empty network namespace of its
own instead: forwards reach nothing.
"""

from __future__ import annotations

import os
import socket
import stat

from dockersh import procstat, statefiles
from dockersh.enter.initproc import open_init
from dockersh.errors import DockershError
from dockersh.login import identity, session
from dockersh.login.identity import User
from dockersh.paths import GLOBAL_CONFIG, GROUP, NETNS_DIR

#: The socketpair the PAM module gives the entry.
REPLY_FD = 3


def state_path(user: User) -> str:
    return f"{NETNS_DIR}/{user.uid}"


def state_key(user: User) -> str:
    """What the PAM module compares before it trusts the state file (see pam_dockersh.c)."""
    try:
        st = os.stat(GLOBAL_CONFIG)
        config = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
    except FileNotFoundError:
        config = "-"
    gids = sorted(set(os.getgrouplist(user.name, user.gid)))
    return f"{config}:{','.join(map(str, gids))}"


def run(name: str, config_path: str) -> int:
    reply = socket.socket(fileno=REPLY_FD)
    if not stat.S_ISSOCK(os.fstat(REPLY_FD).st_mode):
        raise DockershError("dockersh netns is for pam_dockersh.so (a socket on fd 3)")
    user = identity.by_name(name)
    if GROUP not in user.group_names:
        raise DockershError(f"{user.name} is not in group {GROUP}")
    if config_path != GLOBAL_CONFIG:
        raise DockershError("dockersh netns reads only the global config")
    plan = session.load_plan(user, config_path)
    # Forwarding off, or sessions that go elsewhere (a target, a container per session: not
    # one network to join ahead of the session): sshd gets an empty namespace of its own.
    if not plan.forwarding or not plan.in_own_container():
        statefiles.write(state_path(user), f"0 0 - {state_key(user)} -\n".encode(), 0o600)
        reply.send(b"I-")
        return 0
    _, container, _ = session.own_container(user, plan, config_path)
    pid, container_id = container.pid, container.id
    try:
        proc, _ = open_init(pid, container_id)
        try:
            netns = os.open("ns/net", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
            with open(os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc), "rb") as f:
                started = procstat.parse(f.read())[procstat.START_TIME].decode()
        finally:
            os.close(proc)
    except OSError as exc:
        raise DockershError(f"the container's process {pid} is gone ({exc.strerror})") from None
    # The container sshd joins, not the plan: a container kept for a live session may be older
    # than the config.
    shared = any(m.kind == "bind" and m.source == m.target == user.home for m in container.mounts)
    home = b"H" if shared else b"-"
    statefiles.write(state_path(user),
                     f"{pid} {started} {container_id} {state_key(user)} {home.decode()}\n"
                     .encode(), 0o600)
    socket.send_fds(reply, [b"N" + home], [netns])
    return 0
