"""A login: the plan (cached), the user's container (running, current), then the handoff.

The warm path — container running with the current config — costs one lock, two engine GETs
and no heavy import; everything else goes to ``lifecycle`` with the user's lock held.
"""

from __future__ import annotations

import fcntl
import sys

from dockersh.backend.docker.engine import Engine, container_path, image_id, image_path
from dockersh.login import handoff, locks
from dockersh.plan import cache

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, NoReturn

    from dockersh.login.identity import User
    from dockersh.login.invocation import Invocation


def is_current(container: dict[str, Any] | None, image: dict[str, Any] | None,
               session: dict[str, Any], user: User) -> bool:
    """Running, ours, built from the current config and the current image (``image``: the
    inspect of the configured one, None when it is missing)."""
    if container is None or not container["State"].get("Running"):
        return False
    labels = container["Config"].get("Labels") or {}
    return (
        labels.get("dockersh.user") == user.name
        and labels.get("dockersh.uid") == str(user.uid)
        and labels.get("dockersh.config-hash") == session["hash"]
        and image_id(image) in (container["Image"], None)
    )


def load_plan(user: User, config_path: str) -> dict[str, Any]:
    cache_key = cache.key(user, config_path, f"{user.home}/.dockersh.toml")
    session = cache.load(user, cache_key)
    if session is None:
        from dockersh.plan import pipeline

        session = pipeline.full_plan(user, config_path)[1].session
    return session


def run(inv: Invocation, user: User, environ: Mapping[str, str], config_path: str) -> NoReturn:
    session = load_plan(user, config_path)
    for warning in session["warnings"]:
        print(f"dockersh: {warning}", file=sys.stderr, flush=True)
    engine = Engine(str(session["docker_host"]))
    lock_path, sessions_path = locks.paths(user.name)
    lock_fd = locks.acquire(lock_path, fcntl.LOCK_EX, float(session["lock_timeout"]))
    output = None
    try:
        sessions_fd = locks.open_lock(sessions_path)
        container, image = engine.gets(container_path(str(session["name"])),
                                       image_path(str(session["image"])))
        if is_current(container, image, session, user):
            locks.share(sessions_fd)
        else:
            from dockersh.lifecycle import ensure

            # Its notices and progress go to a stderr that cannot block while the lock is held.
            output = locks.HeldOutput()
            saved, sys.stderr = sys.stderr, output
            container = ensure.ensure(engine, user, session, config_path, container,
                                      sessions_fd)
    finally:
        locks.release(lock_fd)
        if output is not None:
            sys.stderr = saved
            output.release()
    assert container is not None
    handoff.run(session, user, container, inv.command, inv.args, environ, sessions_fd)
