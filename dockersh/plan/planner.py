"""The plan: config + user → what the container must be and how a session enters it.

Pure data, no I/O: unit tests assert it exactly. The backend applies ``ContainerSpec``; the
handoff turns ``SessionPlan`` and the session's environment into an exec.
"""

from __future__ import annotations

import hashlib

from dockersh import __version__
from dockersh.config import units
from dockersh.config.schema import Config
from dockersh.labels import LABEL_HASH, LABEL_UID, LABEL_USER, LABEL_VERSION
from dockersh.login.identity import User
from dockersh.paths import EXEC_HELPER, EXEC_HELPER_INSIDE, STATE_DIR
from dockersh.plan import naming
from dockersh.plan.sessionplan import SessionPlan
from dockersh.records import fields, record


@record
class ContainerSpec:
    """Everything that decides how the container is created; its hash is the recreate trigger."""

    name: str
    image: str
    hostname: str
    user: str
    command: tuple[str, ...]
    working_dir: str
    environment: tuple[tuple[str, str], ...]
    mounts: tuple[tuple[str, str, bool], ...]  # (source, target, read_only)
    tmpfs: tuple[tuple[str, str], ...]
    group_add: tuple[int, ...]
    memory: int
    nano_cpus: int
    pids_limit: int
    log_size: int  # bytes of the init's output the engine keeps on disk; 0: none at all
    network: str
    cap_add: tuple[str, ...]
    read_only: bool
    runtime: str
    privileged: bool
    devices: tuple[str, ...]
    pid: str
    ipc: str
    shell_candidates: tuple[str, ...]
    pull: str

    def config_hash(self) -> str:
        """Stable over runs and versions of Python: the repr of plain tuples, strs, ints, bools."""
        # Every field is immutable (tuples of str/int/bool): the shallow dict reprs exactly as
        # dataclasses.asdict's deep copy did when these were dataclasses (ls hashes every
        # user's; tests/unit/test_plan.py pins a hash).
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pull"}
        return hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()[:16]

    def labels(self, user: User) -> dict[str, str]:
        return {
            LABEL_USER: user.name,
            LABEL_UID: str(user.uid),
            LABEL_HASH: self.config_hash(),
            LABEL_VERSION: __version__,
        }


@record
class Plan:
    spec: ContainerSpec
    session: SessionPlan


def substitute(text: str, user: User) -> str:
    """Placeholders {user} {uid} {gid} {home}: plain replacement, never str.format (which would
    let a string reach into Python objects)."""
    for key, value in placeholders(user).items():
        text = text.replace("{" + key + "}", value)
    return text


def placeholders(user: User) -> dict[str, str]:
    return {"user": user.name, "uid": str(user.uid), "gid": str(user.gid), "home": user.home}


def _tmpfs(entry: str) -> tuple[str, str]:
    path, _, options = entry.partition(":")
    return path, options


def make(config: Config, user: User, host_hostname: str) -> Plan:
    c = config.container
    values = placeholders(user)
    name = naming.container_name(c.name, values)
    state = f"{STATE_DIR}/{name}"
    # home = "none": an empty home of the user's own (a tmpfs) instead of the host's.
    mounts = [(user.home, user.home, False)] if c.home == "bind" else []
    mounts += [(substitute(m.source, user), substitute(m.target, user), m.read_only)
               for m in c.mounts]
    mounts += [(f"{state}/passwd", "/etc/passwd", True), (f"{state}/group", "/etc/group", True),
               (EXEC_HELPER, EXEC_HELPER_INSIDE, True)]
    env = {k: substitute(v, user) for k, v in c.env}
    # The shell to look for in the image, in order: configured, the user's own (unless that is
    # dockersh itself, as it is for enrolled users), /bin/sh.
    own = [] if user.shell.endswith("/dockersh") else [user.shell]
    candidates = tuple(dict.fromkeys([c.shell, *own, "/bin/sh"]))
    spec = ContainerSpec(
        name=name,
        image=c.image,
        hostname=naming.hostname(c.hostname or host_hostname, values),
        user=f"{user.uid}:{user.gid}",
        command=c.command,
        working_dir=user.home,
        environment=tuple(sorted(env.items())),
        mounts=tuple(mounts),
        tmpfs=tuple(_tmpfs(substitute(t, user)) for t in c.tmpfs) + (
            ((user.home, f"uid={user.uid},gid={user.gid},mode=0700,exec"),) if c.home == "none"
            else ()),
        group_add=tuple(gid for _, gid in user.groups if gid != user.gid),
        memory=units.parse_size(c.memory) or 0,
        nano_cpus=int(c.cpus * 1e9),
        pids_limit=c.pids_limit,
        log_size=units.parse_size(c.log_size) or 0,
        network=c.network,
        cap_add=tuple(sorted(set(c.cap_add))),
        read_only=c.read_only,
        runtime=c.runtime,
        privileged=c.privileged,
        devices=c.devices,
        pid=c.pid,
        ipc=c.ipc,
        shell_candidates=candidates,
        pull=c.pull,
    )
    s = config.session
    session = SessionPlan(
        name=name,
        hash=spec.config_hash(),
        image=c.image,
        user=user.name,
        uid=user.uid,
        gid=user.gid,
        groups=[gid for _, gid in user.groups],
        home=user.home,
        env=[("HOME", user.home), ("USER", user.name), ("LOGNAME", user.name),
             *sorted(env.items())],
        env_pass=list(s.env_pass),
        exec=s.exec,
        spare=s.spare,
        forwarding=s.forwarding,
        forward_agent=s.forward_agent,
        banner=substitute(s.banner, user),
        backend=config.engine.backend,
        engine_host=config.engine_host(),
        lock_timeout=units.parse_duration(config.docker.lock_timeout) or 0,
        audit_file=config.audit.file,
        audit_syslog=config.audit.syslog,
        warnings=[],
        target=routed(config, user),
        lifetime=c.lifetime,
        key_targets=[(key, entry) for name, t in config.targets
                     if (entry := target_entry(config, name, user))["allowed"] for key in t.keys],
        record=recording(config, user),
    )
    return Plan(spec, session)


def recording(config: Config, user: User) -> dict[str, object]:
    """What a recorded session's monitor needs ({}: not recorded)."""
    a = config.audit
    if not a.record:
        return {}
    return {"dir": a.sessions_dir, "input": a.record_input, "streams": a.record_streams,
            "max_size": units.parse_size(a.max_size) or 0,
            "min_free": units.parse_size(a.min_free) or 0,
            "banner": substitute(a.record_banner, user)}


def routed(config: Config, user: User) -> dict[str, object]:
    """The target the admin maps the user to ([users.NAME] or [groups.NAME] target), or {}."""
    name = config.route.target
    return target_entry(config, name, user) if name else {}


def target_entry(config: Config, name: str, user: User) -> dict[str, object]:
    """``[targets.NAME]`` for ``user``: placeholders filled, and whether they may enter it.
    Builtins only (it travels in the cached plan)."""
    t = dict(config.targets)[name]
    return {
        "name": name,
        "container": substitute(t.container, user),
        "label": substitute(t.label, user),
        "allowed": user.name in t.users or bool(set(t.groups) & set(user.group_names)),
        "user": t.user,
        "shell": t.shell,
        "exec": t.exec,
        "env": [(k, substitute(v, user)) for k, v in t.env],
        "banner": substitute(t.banner, user),
        "workdir": substitute(t.workdir, user),
    }
