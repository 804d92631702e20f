"""What a doctor check reports: a level and one line; a problem line always says the fix."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

OK, FAIL, WARN, NOTE = "ok", "FAIL", "warn", "note"
Finding = tuple[str, str]  # (OK | FAIL | WARN | NOTE, one line)
Findings = Iterator[Finding]
INSTALL = "run install.sh from the dockersh source"


def problem(what: str, fix: str) -> Finding:
    return FAIL, f"{what}; fix: {fix}"


def root_file(path: str, executable: bool) -> str | None:
    """What is wrong with a file only root may change, or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{path} is missing ({exc.strerror})"
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by someone other than root"
    if executable and not st.st_mode & stat.S_IXOTH:
        return f"{path} is not executable"
    return None
