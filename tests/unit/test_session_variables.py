"""The session variables are named once (dockersh.paths.SESSION_VARIABLES); the places that
cannot import Python list them again, and must agree: the static front's C source, the sudoers
rule install.sh installs, and SECURITY.md's table."""

from __future__ import annotations

import re
from pathlib import Path

from dockersh.admin import hostchain
from dockersh.paths import SESSION_VARIABLES, SSH_VARIABLES

REPO = Path(__file__).resolve().parents[2]


def front_names(source: str) -> list[str]:
    """The names the front keeps: its two lists, then TZ and the LC_* categories it matches by
    code (checked here, so that a change there shows too)."""
    names = []
    for array in ("passed", "checked"):
        found = re.search(rf"static const char \*const {array}\[\] = \{{(.*?)\}};", source, re.S)
        assert found, array
        body = re.sub(r"/\*.*?\*/", "", found.group(1), flags=re.S)
        names += re.findall(r'"([A-Z_]+)"', body)
    assert 'memcmp(entry, "TZ", 2)' in source
    assert 'memcmp(entry, "LC_", 3)' in source
    return [*names, "TZ", "LC_*"]


def security_table(text: str) -> list[str]:
    section = text.split("## The sudo environment", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([A-Z_*]+)`", row)]


def test_one_list_of_session_variables() -> None:
    assert len(set(SESSION_VARIABLES)) == len(SESSION_VARIABLES)
    assert set(SSH_VARIABLES) <= set(SESSION_VARIABLES)
    sudoers = (REPO / "etc" / "sudoers.d" / "dockersh").read_text()
    assert hostchain.env_keep(sudoers) == set(SESSION_VARIABLES)
    keep = re.search(r'env_keep\s*=\s*"([^"]*)"', sudoers)
    assert keep is not None and keep.group(1).split() == list(SESSION_VARIABLES)
    front = front_names((REPO / "bin" / "dockersh-front.c").read_text())
    assert sorted(front) == sorted(SESSION_VARIABLES)
    table = security_table((REPO / "SECURITY.md").read_text())
    assert sorted(table) == sorted(SESSION_VARIABLES)
    assert set(SESSION_VARIABLES) == hostchain.ENV_KEEP


def test_a_name_more_anywhere_is_seen() -> None:
    source = (REPO / "bin" / "dockersh-front.c").read_text()
    more = source.replace('"GIT_PROTOCOL",', '"GIT_PROTOCOL", "LD_PRELOAD",')
    assert "LD_PRELOAD" in front_names(more)
    text = (REPO / "SECURITY.md").read_text().replace("| `TZ` |", "| `TZ`, `BASH_ENV` |")
    assert "BASH_ENV" in security_table(text)
