"""Pulling an image with the Docker SDK, for its streamed pull (~165 ms to import: only here),
and the progress read from the engine's pull stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockersh.backend.base import EngineError, Unreachable

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


def api(host: str) -> docker.APIClient:
    import docker

    try:
        return docker.APIClient(base_url=host, version="auto", timeout=300)
    except docker.errors.DockerException as exc:
        raise Unreachable(f"cannot reach the Docker engine at {host}: {exc}") from None


def pull(host: str, image: str, progress: Callable[[float, str], None]) -> str:
    """Pull ``image``; the engine's last status ("downloaded newer image ..."), lower case."""
    import docker.errors

    repository, tag = split_reference(image)
    layers, outcome = Layers(), ""
    try:
        for event in api(host).pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise docker.errors.APIError(str(event["error"]))
            layers.feed(event)
            status = str(event.get("status", ""))
            if status.startswith("Status: "):
                outcome = status.removeprefix("Status: ")
            progress(layers.fraction(), layers.detail())
    except docker.errors.APIError as exc:
        raise EngineError(f"cannot pull {image}: {exc}") from None
    return outcome.split(" for ")[0].lower() or "done"
