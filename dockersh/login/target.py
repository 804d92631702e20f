"""Landing in a target: an existing container that dockersh did not make and never changes.

``[targets.NAME]`` names one container (by name, or by a label such as
``org.example.owner={user}``); the admin maps users or groups to it (``[users.NAME] target``),
and root tests it with ``dockersh --user U --target T``. Unlike docker-ssh's "the first match is
used", exactly one running container must match, or the login is refused in one line; only the
target's ``users`` and ``groups`` may enter; the session runs as the caller's uid:gid unless the
admin wrote another user (``root`` only when written). The session is the same monitor as for
a user's own container (audit records name the target, hangups, exit status), in the target's
exec mode, without a spare; the container's own capabilities and limits are the admin's choice.
dockersh never creates, starts, recreates, stops or removes a target.
"""

from __future__ import annotations

import fcntl

from dockersh.backend.registry import open_backend
from dockersh.errors import DockershError
from dockersh.labels import LABEL_USER
from dockersh.login import handoff, jail, locks
from dockersh.paths import LOCK_DIR
from dockersh.plan.naming import escape
from dockersh.plan.sessionplan import SessionPlan

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, NoReturn

    from dockersh.backend.base import Backend, Container
    from dockersh.login.identity import User
    from dockersh.login.invocation import Invocation


def sessions_path(target: str, user: str) -> str:
    """The flock each live session of ``user`` in ``target`` holds shared (``ls`` counts them).
    ``@`` never appears in an escaped name: never a user's own lock file, and it splits."""
    return f"{LOCK_DIR}/@target@{escape(target)}@{escape(user)}.sessions"


def find(backend: Backend, entry: Mapping[str, Any]) -> Container:
    """The one running container the target names; anything else is refused in one line."""
    name = entry["name"]
    if entry["container"]:
        found = backend.inspect(str(entry["container"]))
        # The engine also resolves id prefixes: only the container of exactly that name.
        if found is None or found.name != entry["container"] or not found.running \
                or LABEL_USER in found.labels:
            raise DockershError(f"target {name}: container {entry['container']} is not "
                                "running")
        return found
    label = str(entry["label"])
    running = [c for c in backend.inspect_many([s.id for s in backend.list_by_label(label)
                                                if LABEL_USER not in s.labels])
               if c is not None and c.running]  # a user's own container is never a target
    if len(running) != 1:
        which = ", ".join(sorted(c.name for c in running)) or "none"
        raise DockershError(f"target {name}: {len(running)} running containers have the label "
                            f"{label} ({which}); exactly one must")
    return running[0]


def ids(entry: Mapping[str, Any], user: User) -> tuple[int, int, list[int]]:
    """uid, gid and groups inside: the caller's own ids (their primary group only: the others
    mean nothing in a container that is not theirs), root, or the admin's UID[:GID]."""
    wanted = str(entry["user"])
    if not wanted:
        return user.uid, user.gid, [user.gid]
    if wanted == "root":
        return 0, 0, [0]
    uid, _, gid = wanted.partition(":")
    return int(uid), int(gid or uid), [int(gid or uid)]


def plan_for(own: SessionPlan, entry: Mapping[str, Any], user: User,
             container: Container) -> SessionPlan:
    """The session plan of a target session: the target's ids, shell, mode, environment and
    banner; the user's own plan's env_pass, engine and audit settings."""
    uid, gid, groups = ids(entry, user)
    home = str(entry["workdir"])
    name = "root" if uid == 0 else user.name
    return SessionPlan(
        name=container.name, hash="", image=container.image, user=user.name, uid=uid, gid=gid,
        groups=groups, home=home,
        env=[("HOME", home), ("USER", name), ("LOGNAME", name), *entry["env"]],
        env_pass=own.env_pass, exec=str(entry["exec"]), spare=False,
        # No agent: a target may be shared (other users, root in it) — never hand it a key.
        forwarding=own.forwarding, forward_agent=False,
        banner=str(entry["banner"]), backend=own.backend, engine_host=own.engine_host,
        lock_timeout=own.lock_timeout, audit_file=own.audit_file,
        audit_syslog=own.audit_syslog, warnings=[], target=dict(entry), record=own.record)


#: sshd's ExposeAuthInfo file: /tmp/sshauth.XXXXXXXXXXXXXXX, made by mkstemp as the user.
AUTH_INFO_PREFIX = "/tmp/sshauth."
MAX_AUTH_INFO = 65536


def keys_used(environ: Mapping[str, str], user: User) -> list[str]:
    """The fingerprints (SHA256:...) of the public keys this SSH session authenticated with,
    from sshd's ExposeAuthInfo file. Read as root, so checked like a user's file: the path
    sshd uses, no symlink, a regular file of the user's with one link, bounded. The user has no
    host shell to write /tmp with; a client cannot send SSH_USER_AUTH (AcceptEnv), nor can
    ~/.pam_environment (not read for group dockersh)."""
    import binascii
    import os
    import stat

    path = environ.get("SSH_USER_AUTH", "")
    if not path.startswith(AUTH_INFO_PREFIX) or "/" in path[len(AUTH_INFO_PREFIX):]:
        return []
    try:
        fd = os.open(jail.session_path(path),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != user.uid or st.st_nlink != 1:
            return []
        data = os.read(fd, MAX_AUTH_INFO)
    finally:
        os.close(fd)
    import hashlib

    found = []
    for line in data.decode("ascii", "replace").splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "publickey":
            continue
        if words[1].endswith("-cert-v01@openssh.com"):
            found.append("certificate")  # matches no fingerprint: see keyed()
        else:
            try:
                blob = binascii.a2b_base64(words[2])
            except binascii.Error:
                continue
            digest = binascii.b2a_base64(hashlib.sha256(blob).digest(), newline=False)
            found.append("SHA256:" + digest.decode().rstrip("="))
    return found


def keyed(plan: SessionPlan, environ: Mapping[str, str], user: User) -> dict[str, object]:
    """The target a key of this session is forced into ({}: none). A user with such keys
    whose key cannot be told (no ExposeAuthInfo) is refused, not let into their own container:
    a key meant only for a target must never land anywhere else."""
    used = keys_used(environ, user)
    if (not used or "certificate" in used) and "SSH_CONNECTION" in environ:
        raise DockershError("cannot tell which key this session used (a certificate, or sshd's "
                            "ExposeAuthInfo is off); refusing, since some of your keys go to a "
                            "target only")
    return next((entry for key, entry in plan.key_targets if key in used), {})


def named(name: str, user: User, config_path: str) -> dict[str, object]:
    """Root's ``--target NAME``: that table for ``user``, from the config files."""
    from dockersh.plan import pipeline, planner

    config, _ = pipeline.effective(user, config_path)
    if name not in dict(config.targets):
        raise DockershError(f"there is no [targets.{name}] in {config_path}")
    return planner.target_entry(config, name, user)


def run(inv: Invocation, user: User, own: SessionPlan, environ: Mapping[str, str],
        config_path: str, entry: Mapping[str, Any]) -> NoReturn:
    """``entry``: the target (a keyed or mapped one; {} with root's --target)."""
    if inv.target is not None:
        entry = named(inv.target, user, config_path)
    if not entry["allowed"]:
        raise DockershError(f"target {entry['name']}: {user.name} is not among its users or "
                            "groups; ask the administrator")
    backend = open_backend(own.backend, own.engine_host)
    container = find(backend, entry)
    plan = plan_for(own, entry, user, container)
    sessions_fd = locks.open_lock(sessions_path(str(entry["name"]), user.name))
    fcntl.flock(sessions_fd, fcntl.LOCK_SH)
    handoff.run(backend, plan, user, container, inv.command, inv.args, environ, sessions_fd,
                shell=str(entry["shell"]))
