"""Bringing a user's container to "running with the current config" (the cold path).

Called with the user's lock held (so a 409 on create cannot be a racing login). Talks to the
engine through the back end (base.Backend). Every branch: running → reuse; paused → unpause;
stopped → start; missing → create; config or image changed → recreate when no session is live,
else reuse and say when the change applies; a same-named container that is not ours → refuse;
a create that finds the name taken (a killed login's create, finished late) → look again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys

from dockersh import statefiles
from dockersh.backend.base import Conflict, Container
from dockersh.errors import DockershError, escaped
from dockersh.labels import LABEL_HASH, LABEL_SHELL, LABEL_UID, LABEL_USER
from dockersh.lifecycle import bindcheck
from dockersh.login import audit, locks
from dockersh.login.identity import User
from dockersh.paths import LOCK_DIR, PROBE_DIR, STATE_DIR
from dockersh.plan import pipeline, planner
from dockersh.plan.sessionplan import SessionPlan

TYPE_CHECKING = False  # importing typing costs 9 ms on a first login
if TYPE_CHECKING:
    from collections.abc import Callable

    from dockersh.backend.base import Backend

PROBE_TIMEOUT = 60.0  # seconds a login waits for another login's probe of the same image


def say(message: str) -> None:
    """A notice on stderr: the user's, or root's (`dockersh start`); it can name what the
    user's file says (a shell), so it is escaped."""
    print(f"dockersh: {escaped(message)}", file=sys.stderr, flush=True)


def managed_by(container: Container, user: User) -> bool:
    labels = container.labels
    return bool(labels.get(LABEL_USER) == user.name
                and labels.get(LABEL_UID) == str(user.uid))


def refuse_foreign(container: Container, user: User) -> None:
    if not managed_by(container, user):
        name, labels = container.name, container.labels
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


def is_stale(image_id: Callable[[str], str | None], container: Container,
             plan: SessionPlan) -> bool:
    """Made from another config, or from an image its reference no longer names (``image_id``:
    the back end's, or ls's memo of it: one image serves hundreds of containers)."""
    if container.labels.get(LABEL_HASH) != plan.hash:
        return True
    now = image_id(plan.image)
    return now is not None and now != container.image_id


def refuse_revoked_groups(container: Container, plan: SessionPlan) -> None:
    """docker mode: an exec gets the container's GroupAdd, fixed at create, and a container
    with live sessions cannot be recreated. A group the account has lost must not reach a new
    session, so it is refused (nsenter mode sets the current groups itself)."""
    if plan.exec == "nsenter":
        return
    kept = set(container.group_add) - {str(g) for g in plan.groups}
    if kept:
        raise DockershError(
            f"your container still has a group you were removed from ({', '.join(sorted(kept))}) "
            "and sessions keep it running; end your other sessions and log in again, or ask "
            f"the administrator to run `dockersh restart {plan.user}`")


def ensure(backend: Backend, user: User, plan: SessionPlan, config_path: str,
           container: Container | None, sessions_fd: int) -> Container:
    """Return the user's running container; hold ``sessions_fd`` shared."""
    name = plan.name
    event = "container-created"
    if container is not None:
        refuse_foreign(container, user)
        if is_stale(backend.image_id, container, plan):
            if locks.try_exclusive(sessions_fd):
                say("your container's configuration changed; recreating it (your home is kept)")
                backend.remove(name)
                container, event = None, "container-recreated"
            else:
                refuse_revoked_groups(container, plan)
                say("the configuration of your container changed; it applies after your last "
                    "session ends")
    if container is None:
        _, full = pipeline.full_plan(user, config_path)
        bindcheck.check([source for source, _, _ in full.spec.mounts], user)
        container = create_or_find(backend, user, full.spec)
    if container is None:
        backend.start(name)
    elif container.paused:
        backend.unpause(name)
        event = "container-started"
    elif not container.running:
        # Docker follows symlinks in bind sources again at every start.
        bindcheck.check([m.source for m in container.mounts if m.kind == "bind"], user)
        say(f"your container had stopped ({container.describe_exit()}); starting it again")
        restore_identity_files(backend, user, config_path, container)
        backend.start(name)
        event = "container-started"
    else:
        event = ""  # running: reused as it is
    locks.share(sessions_fd)
    if event:
        audit.container_event(plan, user, event)
    fresh = backend.inspect(name)
    if fresh is None or not fresh.running:
        raise DockershError(f"container {name} did not stay running; see `docker logs {name}`")
    return fresh


def create_or_find(backend: Backend, user: User,
                   spec: planner.ContainerSpec) -> Container | None:
    """Create the container (None), or, when the name turned out to be taken (409), the
    container that has it: a dockersh killed mid-login leaves its create request to the
    engine, which may finish it after this login looked."""
    try:
        create(backend, user, spec)
    except Conflict:
        appeared = backend.inspect(spec.name)
        if appeared is None:
            raise
        refuse_foreign(appeared, user)
        return appeared
    return None


def restore_identity_files(backend: Backend, user: User, config_path: str,
                           container: Container) -> None:
    """Write the generated passwd and group again when they are gone from the host.

    The container binds them from /var/lib/dockersh, so without them it can never start again
    (install.sh --uninstall removes that directory and keeps the containers). A container that
    is not stale was made from this very spec: same name, same files."""
    sources = [m.source for m in container.mounts]
    if all(os.path.exists(s) for s in sources if s.startswith(f"{STATE_DIR}/")):
        return
    _, full = pipeline.full_plan(user, config_path)
    passwd, group, probed_shell = probe(backend, full.spec)
    shell = container.labels.get(LABEL_SHELL) or probed_shell
    write_identity_files(full.spec, merged_passwd(passwd, user, shell), merged_group(group, user))


def ensure_image(backend: Backend, spec: planner.ContainerSpec) -> None:
    present = backend.image_id(spec.image) is not None
    if spec.pull == "never" or (present and spec.pull == "if-missing"):
        if not present:
            raise DockershError(f"image {spec.image} is not on this host and [container] pull "
                                '= "never"; build or load it, or run `dockersh pull`')
        return
    from dockersh.lifecycle import pulling

    say(f"pulling {spec.image} ...")
    if pulling.pull_one(backend, spec.image):
        return
    if not present:
        raise DockershError(f"image {spec.image} is missing and cannot be pulled")
    say(f"using the local copy of {spec.image}")


def probe(backend: Backend, spec: planner.ContainerSpec) -> tuple[str, str, str]:
    """The image's passwd and group, and the first of the shell candidates it has.

    Read without running the image (base.Backend.read_image), once per image: the answer
    depends only on the image, so it is kept in /run/dockersh/probes by image ID (many first
    logins onto one image, e.g. a class starting at once, pay for one probe: the others wait
    for it on a per-image lock). A cached answer is read without the lock (it is written in
    one rename): 50 first logins at once would otherwise queue on it, polling."""
    image_id = backend.image_id(spec.image) or spec.image
    key = hashlib.sha256(repr((image_id, spec.shell_candidates)).encode()).hexdigest()[:32]
    cache = f"{PROBE_DIR}/{key}"
    probed = probed_answer(cache)
    if probed is None:
        lock_fd = locks.acquire(f"{LOCK_DIR}/probe-{key}.lock", fcntl.LOCK_EX, PROBE_TIMEOUT)
        try:
            probed = probed_answer(cache)  # another login's, made while this one waited
            if probed is None:
                probed = run_probe(backend, spec)
                statefiles.write_marshal(cache, probed)
        finally:
            locks.release(lock_fd)
    passwd, group, shell = probed
    if shell != spec.shell_candidates[0]:
        say(f"{spec.shell_candidates[0]} is not in image {spec.image}; using {shell}")
    return passwd, group, shell


def probed_answer(cache: str) -> tuple[str, str, str] | None:
    """The probe's cached (passwd, group, shell), when the file holds one."""
    cached = statefiles.read_marshal(cache)
    if isinstance(cached, tuple) and len(cached) == 3 and all(isinstance(x, str) for x in cached):
        return cached
    return None


def run_probe(backend: Backend, spec: planner.ContainerSpec) -> tuple[str, str, str]:
    (passwd, group), shell = backend.read_image(spec.image, ("/etc/passwd", "/etc/group"),
                                                spec.shell_candidates)
    if not shell:
        raise DockershError(f"image {spec.image} has none of the shells "
                            f"{', '.join(spec.shell_candidates)}")
    return passwd, group, shell


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


def create(backend: Backend, user: User, spec: planner.ContainerSpec,
           extra: dict[str, str] | None = None) -> None:
    ensure_image(backend, spec)
    passwd, group, shell = probe(backend, spec)
    write_identity_files(spec, merged_passwd(passwd, user, shell), merged_group(group, user))
    backend.create(spec, {**spec.labels(user), LABEL_SHELL: shell, **(extra or {})})


def remove_state(name: str) -> None:
    """/var/lib/dockersh/NAME (the generated passwd and group), never anything else."""
    if not name or "/" in name or name.startswith("."):
        return
    # Its files, then it: dockersh writes no subdirectory there (shutil.rmtree would cost 8 ms
    # of imports, zlib, bz2 and lzma, on the paths that call this).
    path = os.path.join(STATE_DIR, name)
    try:
        entries = os.listdir(path)
    except OSError:
        return
    for entry in entries:
        try:
            os.unlink(os.path.join(path, entry))
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass
