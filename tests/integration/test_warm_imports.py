"""The warm login's import budget, measured on the installed entry: a login into a running,
current container never imports the modules that cost 8-165 ms each (DESIGN.md), in either
exec mode, through nsenter's spare too. ``python -X importtime`` names every module imported."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from support.install import DEFAULT_TEST_CONFIG, Installation
from support.users import LinuxUser

pytestmark = pytest.mark.integration

#: Each costs 3-25 ms (typing 14, dataclasses + inspect, re, json, signal's enum, tomllib,
#: datetime 3) or ~165 ms (the Docker SDK) at every login.
HEAVY = ("typing", "dataclasses", "inspect", "re", "json", "signal", "enum", "tomllib",
         "datetime", "docker", "pam", "argparse")


def login_imports(installed: Installation, user: LinuxUser) -> set[str]:
    """The modules a login as root for ``user`` imported (the monitor's, not the shell's)."""
    proc = subprocess.run(
        [str(installed.venv / "bin" / "python3"), "-IS", "-X", "importtime",
         str(installed.entry), "--user", user.name, "-c", "true"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line.split("|")[-1] for line in proc.stderr.splitlines()
             if line.startswith("import time:") and "|" in line]
    return {line.strip() for line in lines[1:]}  # the first is the header


@pytest.mark.parametrize("mode", ["docker", "nsenter"])
def test_a_warm_login_imports_nothing_heavy(mode: str, installed: Installation,
                                            dockersh_config: Any, make_user: Any) -> None:
    dockersh_config(f'[session]\nexec = "{mode}"\n' + DEFAULT_TEST_CONFIG)
    user = make_user()
    cold = login_imports(installed, user)  # creates the container, caches the plan
    assert "tomllib" in cold  # the measurement sees what a cold login imports
    logins = [login_imports(installed, user) for _ in range(2 if mode == "nsenter" else 1)]
    for imported in logins:  # nsenter: a direct entry (leaves a spare), then the spare's
        assert "dockersh.login.session" in imported
        assert sorted(imported & set(HEAVY)) == []
