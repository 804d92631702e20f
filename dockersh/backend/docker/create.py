"""The Engine API's create request for a container spec: where the hardening is written down
(every capability dropped, no new privileges, an init as PID 1, the limits, the mounts)."""

from __future__ import annotations

from dockersh.plan.planner import ContainerSpec

TYPE_CHECKING = False  # importing typing costs 9 ms on a first login
if TYPE_CHECKING:
    from typing import Any


def host_config(spec: ContainerSpec) -> dict[str, Any]:
    config: dict[str, Any] = {
        "Init": True,
        "CapDrop": ["ALL"],
        "CapAdd": list(spec.cap_add),
        "SecurityOpt": ["no-new-privileges"],
        "Memory": spec.memory,
        "MemorySwap": spec.memory,
        "NanoCpus": spec.nano_cpus,
        "PidsLimit": spec.pids_limit,
        "LogConfig": log_config(spec.log_size),
        "NetworkMode": spec.network,
        "ReadonlyRootfs": spec.read_only,
        "Tmpfs": dict(spec.tmpfs),
        "Mounts": [{"Type": "bind", "Source": source, "Target": target, "ReadOnly": ro}
                   for source, target, ro in spec.mounts],
        "GroupAdd": [str(g) for g in spec.group_add],
        "Privileged": spec.privileged,
        "Devices": [device(d) for d in spec.devices],
        "PidMode": "host" if spec.pid == "host" else "",
        "IpcMode": "host" if spec.ipc == "host" else "private",
    }
    if spec.runtime:
        config["Runtime"] = spec.runtime
    return config


def log_config(size: int) -> dict[str, Any]:
    """The container's log on the host's disk, bounded: the init's stdout (/proc/1/fd/1) is
    writable by the user, and an unbounded json-file log filled the disk at 30-40 MB/s. One
    json-file of at most ``size`` bytes (rotated by truncation: ``docker logs`` keeps
    working), or no log at all for 0."""
    if not size:
        return {"Type": "none", "Config": {}}
    return {"Type": "json-file", "Config": {"max-size": str(size), "max-file": "1"}}


def device(text: str) -> dict[str, str]:
    """``/dev/x``, ``/dev/x:/dev/y`` or ``/dev/x:/dev/y:rw`` as Docker's CLI reads them."""
    parts = text.split(":")
    return {"PathOnHost": parts[0], "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
            "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"}


def create_body(spec: ContainerSpec, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "Image": spec.image,
        "Cmd": list(spec.command),
        "Hostname": spec.hostname,
        "User": spec.user,
        "WorkingDir": spec.working_dir,
        "Env": [f"{k}={v}" for k, v in spec.environment],
        "Labels": labels,
        "HostConfig": host_config(spec),
    }
