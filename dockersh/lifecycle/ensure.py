"""Bringing a user's container to "running with the current config" (the cold path).

Called with the user's lock held (so a 409 on create cannot be a racing login). Talks to the
engine with engine.Engine; the Docker SDK (~165 ms to import: seconds of CPU when a class
logs in at once) only to pull. Every branch: running → reuse; paused → unpause; stopped →
start; missing → create; config or image changed → recreate when no session is live, else
reuse and say when the change applies; a same-named container that is not ours → refuse.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import sys
from typing import Any

from dockersh import statefiles
from dockersh.backend.docker.engine import Engine, quote
from dockersh.errors import DockershError
from dockersh.labels import LABEL_HASH, LABEL_PROBE, LABEL_SHELL, LABEL_UID, LABEL_USER
from dockersh.lifecycle import bindcheck
from dockersh.login import locks
from dockersh.login.identity import User
from dockersh.paths import LOCK_DIR, PROBE_DIR, STATE_DIR
from dockersh.plan import pipeline, planner

PROBE_ENTRYPOINT = ["/dockersh-probe-never-started"]
PROBE_TIMEOUT = 60.0  # seconds a login waits for another login's probe of the same image


def say(message: str) -> None:
    print(f"dockersh: {message}", file=sys.stderr, flush=True)


def managed_by(container: dict[str, Any], user: User) -> bool:
    labels = container.get("Config", {}).get("Labels") or {}
    return bool(labels.get(LABEL_USER) == user.name
                and labels.get(LABEL_UID) == str(user.uid))


def refuse_foreign(container: dict[str, Any], user: User) -> None:
    if not managed_by(container, user):
        name = container.get("Name", "").lstrip("/")
        labels = container.get("Config", {}).get("Labels") or {}
        if labels.get(LABEL_USER) == user.name:
            raise DockershError(
                f"container {name} belongs to an earlier account named {user.name} (uid "
                f"{labels.get(LABEL_UID)}); an administrator can remove it with "
                f"`dockersh rm {user.name}`"
            )
        raise DockershError(
            f"a container named {name} exists but is not dockersh's container for {user.name}; "
            "refusing to touch it (rename or remove it, or change [container] name)"
        )


def is_stale(engine: Engine, container: dict[str, Any], session: dict[str, Any]) -> bool:
    labels = container["Config"].get("Labels") or {}
    if labels.get(LABEL_HASH) != session["hash"]:
        return True
    image_id = engine.image_id(str(session["image"]))
    return image_id is not None and image_id != container["Image"]


def refuse_revoked_groups(container: dict[str, Any], session: dict[str, Any]) -> None:
    """docker mode: an exec gets the container's GroupAdd, fixed at create, and a container
    with live sessions cannot be recreated. A group the account has lost must not reach a new
    session, so it is refused (nsenter mode sets the current groups itself)."""
    if session["exec"] == "nsenter":
        return
    kept = set(container["HostConfig"].get("GroupAdd") or []) - {str(g) for g in session["groups"]}
    if kept:
        raise DockershError(
            f"your container still has a group you were removed from ({', '.join(sorted(kept))}) "
            "and sessions keep it running; end your other sessions and log in again, or ask "
            f"the administrator to run `dockersh restart {session['user']}`")


def ensure(engine: Engine, user: User, session: dict[str, Any], config_path: str,
           container: dict[str, Any] | None, sessions_fd: int) -> dict[str, Any]:
    """Return the inspect data of the user's running container; hold ``sessions_fd`` shared."""
    name = str(session["name"])
    if container is not None:
        refuse_foreign(container, user)
        if is_stale(engine, container, session):
            if locks.try_exclusive(sessions_fd):
                say("your container's configuration changed; recreating it (your home is kept)")
                remove(engine, name)
                container = None
            else:
                refuse_revoked_groups(container, session)
                say("the configuration of your container changed; it applies after your last "
                    "session ends")
    if container is None:
        _, full = pipeline.full_plan(user, config_path)
        bindcheck.check([source for source, _, _ in full.spec.mounts], user)
        container = create_or_find(engine, user, full.spec)
    if container is None:
        start(engine, name)
    else:
        state = container["State"]
        if state.get("Paused"):
            engine.call("POST", f"/containers/{quote(name)}/unpause", what=f"cannot unpause {name}")
        elif not state.get("Running"):
            # Docker follows symlinks in bind sources again at every start.
            bindcheck.check([str(m.get("Source") or "") for m in container.get("Mounts") or []
                             if m.get("Type") == "bind"], user)
            say(f"your container had stopped ({describe_exit(state)}); starting it again")
            restore_identity_files(engine, user, config_path, container)
            start(engine, name)
    locks.share(sessions_fd)
    fresh = engine.container(name)
    if fresh is None or not fresh["State"].get("Running"):
        raise DockershError(f"container {name} did not stay running; see `docker logs {name}`")
    return fresh


def create_or_find(engine: Engine, user: User,
                   spec: planner.ContainerSpec) -> dict[str, Any] | None:
    """Create the container (None), or, when that failed because the container appeared
    meanwhile, its inspect data: a dockersh killed mid-login leaves its create request to the
    engine, which may finish it after this login looked."""
    try:
        create(engine, user, spec)
    except DockershError:
        appeared = engine.container(spec.name)
        if appeared is None:
            raise
        refuse_foreign(appeared, user)
        return appeared
    return None


def restore_identity_files(engine: Engine, user: User, config_path: str,
                           container: dict[str, Any]) -> None:
    """Write the generated passwd and group again when they are gone from the host.

    The container binds them from /var/lib/dockersh, so without them it can never start again
    (install.sh --uninstall removes that directory and keeps the containers). A container that
    is not stale was made from this very spec: same name, same files."""
    sources = [m.get("Source") or "" for m in container.get("Mounts") or []]
    if all(os.path.exists(s) for s in sources if s.startswith(f"{STATE_DIR}/")):
        return
    _, full = pipeline.full_plan(user, config_path)
    passwd, group, probed_shell = probe(engine, full.spec)
    shell = (container["Config"].get("Labels") or {}).get(LABEL_SHELL) or probed_shell
    write_identity_files(full.spec, merged_passwd(passwd, user, shell), merged_group(group, user))


def describe_exit(state: dict[str, Any]) -> str:
    if state.get("OOMKilled"):
        return "killed for using too much memory"
    if state.get("Status") == "created":
        return "never started"
    return f"exit status {state.get('ExitCode')}"


def start(engine: Engine, name: str) -> None:
    engine.call("POST", f"/containers/{quote(name)}/start", what=f"cannot start container {name}")


def remove(engine: Engine, name: str) -> None:
    engine.call("DELETE", f"/containers/{quote(name)}?force=1",
                what=f"cannot remove container {name}", missing_ok=True)


def ensure_image(engine: Engine, spec: planner.ContainerSpec) -> None:
    present = engine.image_id(spec.image) is not None
    if spec.pull == "never" or (present and spec.pull == "if-missing"):
        if not present:
            raise DockershError(f"image {spec.image} is not on this host and [container] pull "
                                '= "never"; build or load it, or run `dockersh pull`')
        return
    from dockersh.lifecycle import pulling

    say(f"pulling {spec.image} ...")
    if pulling.pull_one(engine, spec.image):
        return
    if not present:
        raise DockershError(f"image {spec.image} is missing and cannot be pulled")
    say(f"using the local copy of {spec.image}")


def probe(engine: Engine, spec: planner.ContainerSpec) -> tuple[str, str, str]:
    """The image's passwd and group, and the first of the shell candidates it has.

    Read from a container that is created but never started, once per image: the answer
    depends only on the image, so it is kept in /run/dockersh/probes by image ID (many first
    logins onto one image, e.g. a class starting at once, pay for one probe: the others wait
    for it on a per-image lock)."""
    image_id = engine.image_id(spec.image) or spec.image
    key = hashlib.sha256(repr((image_id, spec.shell_candidates)).encode()).hexdigest()[:32]
    cache = f"{PROBE_DIR}/{key}"
    lock_fd = locks.acquire(f"{LOCK_DIR}/probe-{key}.lock", fcntl.LOCK_EX, PROBE_TIMEOUT)
    try:
        cached = statefiles.read_marshal(cache)
        if isinstance(cached, tuple) and len(cached) == 3:
            passwd, group, shell = cached
        else:
            passwd, group, shell = run_probe(engine, spec)
            statefiles.write_marshal(cache, (passwd, group, shell))
    finally:
        locks.release(lock_fd)
    if shell != spec.shell_candidates[0]:
        say(f"{spec.shell_candidates[0]} is not in image {spec.image}; using {shell}")
    return passwd, group, shell


def run_probe(engine: Engine, spec: planner.ContainerSpec) -> tuple[str, str, str]:
    created = engine.call("POST", "/containers/create",
                          {"Image": spec.image, "Entrypoint": PROBE_ENTRYPOINT,
                           "NetworkDisabled": True, "Labels": {LABEL_PROBE: "1"}},
                          what=f"cannot read image {spec.image}")
    probe_id = str(created["Id"])
    try:
        passwd = read_file(engine, probe_id, "/etc/passwd")
        group = read_file(engine, probe_id, "/etc/group")
        shell = next((s for s in spec.shell_candidates if path_exists(engine, probe_id, s)), "")
    finally:
        remove(engine, probe_id)
    if not shell:
        raise DockershError(f"image {spec.image} has none of the shells "
                            f"{', '.join(spec.shell_candidates)}")
    return passwd, group, shell


def path_exists(engine: Engine, container_id: str, path: str) -> bool:
    status, _ = engine.request("HEAD", f"/containers/{container_id}/archive?path={quote(path)}")
    return status == 200


def read_file(engine: Engine, container_id: str, path: str) -> str:
    """A text file of a container (through the archive endpoint: a tar of one file)."""
    status, data = engine.request("GET", f"/containers/{container_id}/archive?path={quote(path)}",
                                  raw=True)
    if status != 200:
        return ""
    import tarfile  # 5 ms: only when an image is probed, not at every first login

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.next()
        extracted = tar.extractfile(member) if member is not None else None
        return extracted.read().decode("utf-8", "replace") if extracted else ""


def merged_passwd(image_passwd: str, user: User, shell: str) -> str:
    """The image's accounts, minus any that clash with the user, plus the user."""
    gecos = user.gecos.replace(":", " ").replace("\n", " ")
    keep = [line for line in image_passwd.splitlines()
            if line and line.split(":")[0] != user.name
            and [*line.split(":"), "", "", ""][2] != str(user.uid)]
    if not any(line.startswith("root:") for line in keep):
        keep.insert(0, "root:x:0:0:root:/root:/bin/sh")
    keep.append(f"{user.name}:x:{user.uid}:{user.gid}:{gecos}:{user.home}:{shell}")
    return "\n".join(keep) + "\n"


def merged_group(image_group: str, user: User) -> str:
    """The image's groups, with the user's groups (by gid) present and listing the user."""
    entries = [line.split(":") for line in image_group.splitlines() if line.count(":") == 3]
    for name, gid in user.groups:
        match = next((e for e in entries if e[2] == str(gid)), None)
        if match is None:
            entries = [e for e in entries if e[0] != name]
            entries.append([name, "x", str(gid), user.name])
        elif user.name not in match[3].split(","):
            match[3] = ",".join(filter(None, [*match[3].split(","), user.name]))
    return "".join(":".join(e) + "\n" for e in entries)


def write_identity_files(spec: planner.ContainerSpec, passwd: str, group: str) -> None:
    directory = f"{STATE_DIR}/{spec.name}"
    os.makedirs(directory, mode=0o755, exist_ok=True)  # before statefiles makes it 0700
    for filename, text in (("passwd", passwd), ("group", group)):
        statefiles.write(f"{directory}/{filename}", text.encode(), 0o644)


def host_config(spec: planner.ContainerSpec) -> dict[str, Any]:
    """The engine's HostConfig for a spec: every capability dropped, no new privileges,
    an init as PID 1, the limits, the mounts."""
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


def create_body(spec: planner.ContainerSpec, user: User, shell: str) -> dict[str, Any]:
    return {
        "Image": spec.image,
        "Cmd": list(spec.command),
        "Hostname": spec.hostname,
        "User": spec.user,
        "WorkingDir": spec.working_dir,
        "Env": [f"{k}={v}" for k, v in spec.environment],
        "Labels": {**spec.labels(user), LABEL_SHELL: shell},
        "HostConfig": host_config(spec),
    }


def create(engine: Engine, user: User, spec: planner.ContainerSpec) -> None:
    ensure_image(engine, spec)
    passwd, group, shell = probe(engine, spec)
    write_identity_files(spec, merged_passwd(passwd, user, shell), merged_group(group, user))
    engine.call("POST", f"/containers/create?name={quote(spec.name)}",
                create_body(spec, user, shell), what=f"cannot create container {spec.name}")
