"""What dockersh keeps per user and per container on the host (/var/lib/dockersh, the files
under /run/dockersh), so that a test run removes what its users' logins left there: dockersh's
own `gc` sweeps such files only once they are 10 minutes old (admin/leftovers.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from dockersh.paths import LOCK_DIR, NETNS_DIR, PLAN_DIR, SECCOMP_DIR, SPARE_DIR, STATE_DIR

DIRS = tuple(Path(d) for d in (STATE_DIR, LOCK_DIR, PLAN_DIR, SPARE_DIR, SECCOMP_DIR, NETNS_DIR))


def entries() -> set[Path]:
    """Every entry of those directories now."""
    return {entry for d in DIRS if d.is_dir() for entry in d.iterdir()}


def remove_new(before: set[Path]) -> None:
    """Remove the entries that were not there at ``before`` (the run's containers are gone)."""
    for entry in entries() - before:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
