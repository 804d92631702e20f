"""The engine under test through the docker CLI: labelled containers, images and diagnostics
(Podman through its Docker-compatible socket in the Podman pass: tests/support/engine.py).

The CLI rather than the SDK, so that cleanup and failure reports work even when a test broke
the SDK client, and without importing the SDK into every test process.
"""

from __future__ import annotations

import json
import subprocess

from . import REPO
from .cmd import run

#: The label every dockersh container carries (DESIGN.md: labels on containers are the state).
USER_LABEL = "dockersh.user"


def answers() -> bool:
    """True when dockerd answers the CLI."""
    try:
        return run(["docker", "info"], check=False, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_running() -> None:
    """Make dockerd answer, starting it the way the setup script does when it is down."""
    if not answers():
        run([REPO / "tests" / "setup-host.sh", "--dockerd"], timeout=60)


def containers(label: str = USER_LABEL) -> list[str]:
    """IDs of all containers (running or not) carrying label (`KEY` or `KEY=VALUE`)."""
    out = run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={label}"], timeout=30)
    return out.stdout.split()


def containers_by_user() -> dict[str, str]:
    """ID -> the dockersh.user label, for all containers carrying it."""
    out = run(["docker", "ps", "-a", "--no-trunc", "--filter", f"label={USER_LABEL}",
               "--format", f'{{{{.ID}}}} {{{{.Label "{USER_LABEL}"}}}}'], timeout=30)
    pairs = (line.partition(" ") for line in out.stdout.splitlines())
    return {cid: user for cid, _, user in pairs}


def remove(ids: list[str]) -> None:
    """docker rm -f the containers; those already gone are fine."""
    if ids:
        run(["docker", "rm", "-f", *ids], check=False, timeout=120)


def remove_labelled(label: str) -> None:
    remove(containers(label))


def image_labels(image: str, host: str | None = None) -> dict[str, str] | None:
    """The image's labels, or None when there is no such image (on ``host``, default: the
    engine under test)."""
    proc = run(["docker", *(["-H", host] if host else []), "image", "inspect", image],
               check=False, timeout=30)
    if proc.returncode != 0:
        return None
    labels = json.loads(proc.stdout)[0]["Config"].get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def diagnostics(ids: list[str], log_lines: int = 100) -> str:
    """`docker ps -a`, `docker inspect` and the end of `docker logs` of the given containers."""
    parts = [run(["docker", "ps", "-a", "--filter", f"label={USER_LABEL}"], check=False).stdout]
    for cid in ids:
        inspect = run(["docker", "inspect", cid], check=False)
        logs = run(["docker", "logs", "--tail", str(log_lines), cid], check=False)
        parts.append(f"--- docker inspect {cid[:12]}\n{inspect.stdout}{inspect.stderr}")
        parts.append(f"--- docker logs --tail {log_lines} {cid[:12]}\n{logs.stdout}{logs.stderr}")
    return "\n".join(parts)
