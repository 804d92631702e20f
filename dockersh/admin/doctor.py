"""``dockersh doctor``: check the whole setup; each problem in one line, with how to fix it.

Exit status 0 when healthy, 1 when a problem was found. Notes and warnings do not fail.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from dockersh.admin import hostchain, inventory
from dockersh.admin.configverb import check_config
from dockersh.admin.findings import FAIL, INSTALL, NOTE, OK, WARN, Finding, problem, root_file
from dockersh.backend.registry import get_backend
from dockersh.config import schema
from dockersh.errors import DockershError
from dockersh.labels import LABEL_UID, LABEL_USER
from dockersh.paths import (
    ENTRY,
    EXEC_HELPER,
    FRONT,
    GROUP,
    PAM_SERVICE,
    SHELLS,
    SUDOERS,
    VISUDO,
)
from dockersh.plan import pipeline

if TYPE_CHECKING:
    from dockersh.backend.base import Backend

Check = Callable[["Context"], Iterator[Finding]]


class Context:
    """What the checks share: the config (defaults when it is broken) and the engine."""

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self.config = schema.Config()
        self.backend: Backend | None = None


def check_config_file(ctx: Context) -> Iterator[Finding]:
    try:
        warnings = check_config(ctx.config_path)
        ctx.config = pipeline.global_config(ctx.config_path)
    except DockershError as exc:
        yield problem(exc.message, f"edit {ctx.config_path}, then `dockersh config check`")
        return
    yield OK, f"config {ctx.config_path} is valid"
    for warning in warnings:
        yield WARN, warning


#: How each engine is started, with systemd and without.
START_ENGINE = {
    "docker": "systemctl start docker; without systemd: dockerd &",
    "podman": "systemctl start podman.socket; without systemd: podman system service --time=0 &",
}


def check_engine(ctx: Context) -> Iterator[Finding]:
    try:
        backend = get_backend(ctx.config)
        version = backend.version()
    except DockershError as exc:
        name = ctx.config.engine.backend
        yield problem(exc.message, f"start the {name} engine ({START_ENGINE.get(name, '')}), "
                      f"or fix [{name}] host")
        return
    ctx.backend = backend
    yield OK, f"{version} at {backend.where}"


def check_image(ctx: Context) -> Iterator[Finding]:
    image = ctx.config.container.image
    if ctx.backend is None:
        yield NOTE, f"image {image} not checked: the engine is not reachable"
    elif ctx.backend.image_id(image) is None:
        yield problem(f"the default image {image} is not on this host",
                      f"`dockersh pull`, or {INSTALL} (it builds dockersh-session:latest)")
    else:
        yield OK, f"the default image {image} is present"


def check_programs(ctx: Context) -> Iterator[Finding]:
    for path in (FRONT, ENTRY, EXEC_HELPER):  # the helper: containers are made with it
        wrong = root_file(path, executable=True)
        if wrong is None and path == EXEC_HELPER and os.stat(path).st_mode & 0o044:
            # Readable, a process of the user could ptrace it between its execve and its
            # prctl (it is dumpable until then).
            wrong = f"{path} is readable by users (it must be 0711)"
        yield (OK, f"{path} is in place") if wrong is None else problem(wrong, INSTALL)


def check_shells(ctx: Context) -> Iterator[Finding]:
    try:
        with open(SHELLS, encoding="utf-8") as f:
            listed = FRONT in (line.strip() for line in f)
    except OSError:
        listed = False
    if listed:
        yield OK, f"{FRONT} is in {SHELLS}"
    else:
        yield problem(f"{FRONT} is not in {SHELLS}", f"echo {FRONT} >> {SHELLS}, or {INSTALL}")


def check_group(ctx: Context) -> Iterator[Finding]:
    try:
        members = grp.getgrnam(GROUP).gr_mem
    except KeyError:
        yield problem(f"there is no group {GROUP}", f"groupadd --system {GROUP}, or {INSTALL}")
        return
    yield OK, f"group {GROUP} exists ({len(members)} listed members)"


def check_sudoers(ctx: Context) -> Iterator[Finding]:
    wrong = root_file(SUDOERS, executable=False)
    if wrong is not None:
        yield problem(wrong, INSTALL)
        return
    if not os.access(VISUDO, os.X_OK):
        yield problem("sudo is not installed", f"apt-get install sudo, then {INSTALL}")
        return
    proc = subprocess.run([VISUDO, "-c", "-q", "-f", SUDOERS], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        said = " ".join((proc.stderr + proc.stdout).split())
        yield problem(f"{SUDOERS} is not valid ({said})", INSTALL)
    else:
        yield OK, f"{SUDOERS} is valid"


def check_pam(ctx: Context) -> Iterator[Finding]:
    wrong = root_file(PAM_SERVICE, executable=False)
    yield (OK, f"{PAM_SERVICE} is in place") if wrong is None else problem(wrong, INSTALL)


def check_host_chain(ctx: Context) -> Iterator[Finding]:
    yield from hostchain.check_chain()


def check_users(ctx: Context) -> Iterator[Finding]:
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return  # said by check_group
    outside = [entry.pw_name for entry in pwd.getpwall() if entry.pw_shell == FRONT
               and gid not in os.getgrouplist(entry.pw_name, entry.pw_gid)]
    for name in outside:
        yield problem(f"{name} has the login shell {FRONT} but is not in group {GROUP}, so "
                      "cannot log in", f"dockersh enroll {name}")
    if not outside:
        yield OK, f"every user with the login shell {FRONT} is in group {GROUP}"


def check_orphans(ctx: Context) -> Iterator[Finding]:
    if ctx.backend is None:
        return
    orphans = [c.name for c in inventory.find(ctx.backend)
               if inventory.account(c.labels.get(LABEL_USER, ""),
                                    c.labels.get(LABEL_UID, "")) is None]
    if orphans:
        yield NOTE, (f"{len(orphans)} container(s) of users who no longer exist "
                     f"({', '.join(orphans[:5])}{' ...' if len(orphans) > 5 else ''}); "
                     "`dockersh gc` removes them")


CHECKS: tuple[Check, ...] = (
    check_config_file, check_engine, check_image, check_programs,
    check_shells, check_group, check_sudoers, check_pam, check_host_chain, check_users,
    check_orphans,
)


def run(config_path: str) -> int:
    ctx = Context(config_path)
    problems = 0
    for check in CHECKS:
        for level, line in check(ctx):
            problems += level == FAIL
            print(f"{level:<5} {line}", flush=True)
    print("healthy" if not problems else
          f"{problems} problem{'s' * (problems != 1)} found", flush=True)
    return 1 if problems else 0
