"""``dockersh pull``: fetch the configured images ahead of logins, with a progress bar."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from dockersh.backend.docker.engine import Engine
from dockersh.errors import DockershError
from dockersh.lifecycle.progress import Bar

if TYPE_CHECKING:
    import docker

#: Layer statuses in the engine's pull stream, as (downloaded, extracted) fractions.
DONE_DOWNLOADING = ("Verifying Checksum", "Download complete")
DONE = ("Pull complete", "Already exists")


class Layers:
    """Per-layer progress from the pull stream; each layer weighs the same."""

    def __init__(self) -> None:
        self.progress: dict[str, tuple[float, float]] = {}
        self.bytes: dict[str, tuple[int, int]] = {}

    def feed(self, event: dict[str, Any]) -> None:
        layer, status = str(event.get("id", "")), str(event.get("status", ""))
        detail = event.get("progressDetail") or {}
        known = self.progress.get(layer, (0.0, 0.0))
        part = detail.get("current", 0) / detail["total"] if detail.get("total") else 0.0
        if status in ("Pulling fs layer", "Waiting"):
            self.progress[layer] = known
        elif status == "Downloading":
            self.progress[layer] = (part, 0.0)
            self.bytes[layer] = (int(detail.get("current", 0)), int(detail.get("total", 0)))
        elif status in DONE_DOWNLOADING:
            self.progress[layer] = (1.0, 0.0)
        elif status == "Extracting":
            self.progress[layer] = (1.0, part)
        elif status in DONE:
            self.progress[layer] = (1.0, 1.0)

    def fraction(self) -> float:
        if not self.progress:
            return 0.0
        return sum(d + e for d, e in self.progress.values()) / (2 * len(self.progress))

    def detail(self) -> str:
        total = sum(t for _, t in self.bytes.values())
        if not total:
            return f"{len(self.progress)} layers"
        done = sum(self.bytes[k][1] if self.progress[k][0] >= 1 else c
                   for k, (c, _) in self.bytes.items())
        return f"{done / 1e6:.1f}/{total / 1e6:.1f} MB"


def split_reference(image: str) -> tuple[str, str]:
    if "@" in image:
        return image, ""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, "latest"
    return name, tag


def api(engine: Engine) -> docker.APIClient:
    """The Docker SDK, for its streamed pull: imported only here (~165 ms)."""
    import docker

    try:
        return docker.APIClient(base_url=engine.host, version="auto", timeout=300)
    except docker.errors.DockerException as exc:
        raise DockershError(f"cannot reach the Docker engine at {engine.host}: {exc}") from None


def pull_one(engine: Engine, image: str) -> bool:
    """Pull ``image`` with a bar on stderr (a first login's, or ``dockersh pull``'s); False,
    and one line, when it cannot be pulled."""
    import docker.errors

    repository, tag = split_reference(image)
    bar, layers, outcome = Bar(image), Layers(), ""
    try:
        for event in api(engine).pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise docker.errors.APIError(str(event["error"]))
            layers.feed(event)
            status = str(event.get("status", ""))
            if status.startswith("Status: "):
                outcome = status.removeprefix("Status: ")
            bar.update(layers.fraction(), layers.detail())
    except docker.errors.APIError as exc:
        bar.finish("failed", complete=False)
        print(f"dockersh: cannot pull {image}: {exc}", file=sys.stderr)
        return False
    bar.finish(outcome.split(" for ")[0].lower() or "done")
    return True
