"""Helpers behind tests/conftest.py: real dockerd, sshd, Linux users and terminals.

Everything here drives the real components through their command-line tools, so a failing
helper says which command failed and what it printed.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    """CI runs .ci/run with CI=true."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
