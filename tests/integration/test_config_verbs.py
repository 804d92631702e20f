"""dockersh config check / config show USER, as root, on real files and a real account."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import DOCKERSH

pytestmark = pytest.mark.integration


def dockersh_root(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKERSH, *args], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )


def test_check_accepts_a_good_file_and_names_the_bad_key(installed: Any, tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[container]\nmemory = "1g"\n[users.alice.container]\ncpus = 2\n')
    proc = dockersh_root("--config", str(good), "config", "check")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{good}: ok\n", "")
    bad = tmp_path / "bad.toml"
    bad.write_text('[container]\nmemory = "1g"\n[users.alice.container]\nprivileged = true\n')
    proc = dockersh_root("--config", str(bad), "config", "check")
    assert proc.returncode == 125
    assert proc.stderr == (
        f"dockersh: {bad}: [users.alice] [container] privileged = true: "
        "gives sessions root on the host; refused (set [security] "
        "dangerously_allow_host_access = true to allow)\n"
    )
    bad.write_text(bad.read_text() + "[security]\ndangerously_allow_host_access = true\n")
    proc = dockersh_root("--config", str(bad), "config", "check")
    assert proc.returncode == 0
    assert "warning: [users.alice] [container] privileged = true gives sessions root" in (
        proc.stderr
    )


def test_show_prints_the_effective_merged_config(
    installed: Any, make_user: Any, tmp_path: Path
) -> None:
    user = make_user()
    path = tmp_path / "c.toml"
    path.write_text(
        f'[container]\nmemory = "1g"\nenv = {{ A = "1" }}\n'
        f'[groups.dockersh.container]\nmemory = "3g"\n'
        f'[users.{user.name}.container]\nenv = {{ B = "{{user}}" }}\n'
        f'[user_config]\nallow = ["container.hostname"]\n'
    )
    (user.home / ".dockersh.toml").write_text('[container]\nhostname = "mine"\n')
    subprocess.run(
        ["chown", f"{user.uid}:{user.gid}", str(user.home / ".dockersh.toml")], check=True
    )
    proc = dockersh_root("--config", str(path), "config", "show", user.name)
    assert proc.returncode == 0, proc.stderr
    shown = tomllib.loads(proc.stdout)
    assert shown["container"]["memory"] == "3g"
    assert shown["container"]["env"] == {"A": "1", "B": "{user}"}
    assert shown["container"]["hostname"] == "mine"
    assert shown["session"]["exec"] == "docker"
