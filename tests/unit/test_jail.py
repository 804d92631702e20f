"""Leaving sshd's jail, on the real kernel (as root, as the suite runs): in a child with a mount
namespace of its own."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from dockersh.errors import DockershError
from dockersh.login import jail
from dockersh.paths import JAIL

CLONE_NEWNS = 0x00020000
MS_REC, MS_SLAVE = 0x4000, 0x80000


def in_jail(where: str, home_link: bool) -> int:
    """Fork a child that chroots into a tmpfs at ``where`` (no /proc, a /dev, the cwd a home
    holding a dev -> / link) and tries to leave: 0 left to the real root, 1 refused, 2 else."""
    pid = os.fork()
    if pid == 0:
        status = 2
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.unshare(CLONE_NEWNS) == 0
            assert libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None) == 0
            os.makedirs(os.path.dirname(where), mode=0o700, exist_ok=True)  # as install.sh
            os.makedirs(where, exist_ok=True)
            assert libc.mount(b"tmpfs", where.encode(), b"tmpfs", 0, b"mode=0755") == 0
            os.mkdir(f"{where}/dev")
            os.makedirs(f"{where}/home/u")
            if home_link:
                os.symlink("/", f"{where}/home/u/dev")
            os.chroot(where)
            os.chdir("/home/u")
            try:
                jail.leave()
                status = 0 if jail.session_root == JAIL and Path("/proc/self").is_dir() else 2
            except DockershError:
                status = 1
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_root_leaves_the_jail_whatever_the_home_holds() -> None:
    assert in_jail(JAIL, home_link=True) == 0


def test_a_root_that_is_not_the_jail_is_refused(tmp_path: Path) -> None:
    assert in_jail(str(tmp_path / "elsewhere"), home_link=False) == 1


def test_outside_a_jail_nothing_changes() -> None:
    jail.leave()
    assert jail.session_root == "" and jail.session_path("/tmp/x") == "/tmp/x"
