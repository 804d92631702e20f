"""A login: the plan (cached), the user's container (running, current), then the handoff.

The warm path — container running with the current config — costs one lock, one round trip to
the engine (the container and the image asked at once) and no heavy import; everything else
goes to ``lifecycle`` with the user's lock held.
"""

from __future__ import annotations

import fcntl
import sys

from dockersh.backend.registry import open_backend
from dockersh.errors import DockershError
from dockersh.labels import LABEL_HASH, LABEL_UID, LABEL_USER
from dockersh.login import handoff, locks
from dockersh.plan import cache

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn

    from dockersh.backend.base import Backend, Container
    from dockersh.login.identity import User
    from dockersh.login.invocation import Invocation
    from dockersh.plan.sessionplan import SessionPlan


def is_current(container: Container | None, image_id: str | None, plan: SessionPlan,
               user: User) -> bool:
    """Running, ours, built from the current config and the current image (``image_id``: the
    configured image's, None when it is missing)."""
    if container is None or not container.running:
        return False
    labels = container.labels
    return (
        labels.get(LABEL_USER) == user.name
        and labels.get(LABEL_UID) == str(user.uid)
        and labels.get(LABEL_HASH) == plan.hash
        and image_id in (container.image_id, None)
    )


def load_plan(user: User, config_path: str) -> SessionPlan:
    cache_key = cache.key(user, config_path, f"{user.home}/.dockersh.toml")
    plan = cache.load(user, cache_key)
    if plan is None:
        from dockersh.plan import pipeline

        plan = pipeline.full_plan(user, config_path)[1].session
    return plan


def elsewhere(inv: Invocation, user: User, plan: SessionPlan, environ: Mapping[str, str],
              config_path: str) -> None:
    """Sessions that do not go to the user's own persistent container go from here (a target,
    a container of their own) and never return."""
    if inv.target is not None or plan.to_target():
        from dockersh.login import target  # an existing container, not the user's own

        # A forced key counts only for the user's own login (root's --user is by hand).
        entry = target.keyed(plan, environ, user) if plan.key_targets and inv.user is None \
            else {}
        if inv.target is not None or entry or plan.target:
            target.run(inv, user, plan, environ, config_path, entry or plan.target)
    if plan.lifetime == "session":  # a container of its own for this session
        from dockersh.lifecycle import ephemeral

        ephemeral.run(inv, user, plan, environ, config_path)


def own_container(user: User, plan: SessionPlan,
                  config_path: str) -> tuple[Backend, Container, int]:
    """The user's container running with the current config; the returned sessions lock fd is
    held shared (a live session) until it is closed."""
    backend = open_backend(plan.backend, plan.engine_host)
    lock_path, sessions_path = locks.paths(user.name)
    lock_fd = locks.acquire(lock_path, fcntl.LOCK_EX, float(plan.lock_timeout))
    output = None
    sessions_fd = -1
    try:
        sessions_fd = locks.open_lock(sessions_path)
        container, image_id = backend.inspect_with_image(plan.name, plan.image)
        if is_current(container, image_id, plan, user):
            locks.share(sessions_fd)
        else:
            from dockersh.lifecycle import ensure

            # Its notices and progress go to a stderr that cannot block while the lock is held.
            output = locks.HeldOutput()
            saved, sys.stderr = sys.stderr, output
            container = ensure.ensure(backend, user, plan, config_path, container, sessions_fd)
    except BaseException:
        # A login exits now anyway; `dockersh start` goes on to the next user, and must not
        # keep this one's sessions lock (exclusive after a recreate) or count as a session.
        if sessions_fd >= 0:
            locks.release(sessions_fd)
        raise
    finally:
        locks.release(lock_fd)
        if output is not None:
            sys.stderr = saved
            output.release()
    assert container is not None
    return backend, container, sessions_fd


def check_network(environ: Mapping[str, str]) -> None:
    """A login through sshd must come after sshd's PAM step (pam_dockersh.so) put sshd into
    the container's network, or into an empty one of its own (forwarding off, or something
    failed); the module says which in DOCKERSH_NET (sshd passes the PAM environment on; a
    client cannot send it, and ~/.pam_environment is not read for the group). Without it, the
    PAM block is missing while the sshd drop-in allows forwarding: forwards of this connection
    would start on the host. Refuse loudly rather than leave that hole silent. (A connection
    that runs no shell, ssh -N or -W, is never seen here: it relies on the PAM block alone.)"""
    if "SSH_CONNECTION" in environ and environ.get("DOCKERSH_NET") not in ("container",
                                                                          "isolated"):
        raise DockershError("sshd did not put this connection into your container's network "
                            "(pam_dockersh.so is missing from /etc/pam.d/sshd): forwarding "
                            "would reach the host; refusing (the administrator: run install.sh "
                            "again, or dockersh doctor)")


def run(inv: Invocation, user: User, environ: Mapping[str, str], config_path: str) -> NoReturn:
    plan = load_plan(user, config_path)
    for warning in plan.warnings:
        print(f"dockersh: {warning}", file=sys.stderr, flush=True)
    if inv.user is None:  # the login shell (`--user` is root's or a password's, by hand)
        check_network(environ)
    else:  # NAME's agent socket, found with ls and ps, is no proof of NAME's keys
        environ = {k: v for k, v in environ.items() if k != "SSH_AUTH_SOCK"}
    elsewhere(inv, user, plan, environ, config_path)
    backend, container, sessions_fd = own_container(user, plan, config_path)
    handoff.run(backend, plan, user, container, inv.command, inv.args, environ, sessions_fd)
