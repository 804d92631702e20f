"""Configuration: load TOML, validate each layer, merge them, freeze the result.

Layers, lowest first: built-in defaults < the global file < ``[groups.NAME]`` (in the order they
are written in the file, for the groups the user is in) < ``[users.NAME]`` < the user's own
``~/.dockersh.toml`` (only keys the admin allows, images only by alias).

The record fields below (dockersh/records.py) are the schema: each carries its default and, in
``metadata``, how it is validated and whether a user's own file may set it. etc/dockersh.toml
documents every key.
"""

from __future__ import annotations

import os
import posixpath

from dockersh import records
from dockersh.config import units
from dockersh.errors import DockershError, escaped
from dockersh.paths import SESSIONS_DIR
from dockersh.records import field, record

TYPE_CHECKING = False  # importing typing costs 9 ms on a first login
if TYPE_CHECKING:
    from typing import Any

#: Capabilities an admin may add back without the danger switch: Docker's own default set.
#: Sessions run as the user's uid with no-new-privileges, so these only widen the bounding set.
SAFE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
ALL_CAPABILITIES = SAFE_CAPABILITIES | {
    "AUDIT_CONTROL", "AUDIT_READ", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
    "DAC_READ_SEARCH", "IPC_LOCK", "IPC_OWNER", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN",
    "MAC_OVERRIDE", "NET_ADMIN", "NET_BROADCAST", "PERFMON", "SYS_ADMIN", "SYS_BOOT",
    "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE",
    "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM",
}
#: Host paths whose mounting hands out the host (or the Docker socket, which is the same).
DANGEROUS_SOURCES = ("/", "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var/lib/docker",
                     "/var/lib/containers", "/run", "/var/run")


def opt(default: Any, kind: str, *, user: bool = False, choices: tuple[str, ...] = ()) -> Any:
    """A config key: its default, its kind (how it is validated) and whether users may set it.
    ``choices``: a choice's values; for a duration, words it takes besides durations."""
    return field(default=default, metadata={"kind": kind, "user": user, "choices": choices})


@record
class Mount:
    source: str
    target: str
    read_only: bool = True


@record
class ContainerConfig:
    image: str = opt("dockersh-session:latest", "str", user=True)
    name: str = opt("dockersh-{user}", "str")
    hostname: str = opt("", "str", user=True)
    shell: str = opt("/bin/bash", "path", user=True)
    command: tuple[str, ...] = opt(("sleep", "infinity"), "strlist")
    memory: str = opt("2g", "size")
    cpus: float = opt(1.0, "float")
    pids_limit: int = opt(512, "int")
    log_size: str = opt("10m", "size")
    network: str = opt("bridge", "str")
    cap_add: tuple[str, ...] = opt((), "caps")
    read_only: bool = opt(False, "bool")
    tmpfs: tuple[str, ...] = opt((), "strlist")
    env: tuple[tuple[str, str], ...] = opt((), "table", user=True)
    mounts: tuple[Mount, ...] = opt((), "mounts")
    pull: str = opt("if-missing", "choice", choices=("if-missing", "always", "never"))
    lifetime: str = opt("persistent", "choice", choices=("persistent", "session"))
    max_containers: int = opt(4, "int")
    home: str = opt("bind", "choice", choices=("bind", "none"))
    runtime: str = opt("", "str")
    privileged: bool = opt(False, "bool")
    devices: tuple[str, ...] = opt((), "strlist")
    pid: str = opt("private", "choice", choices=("private", "host"))
    ipc: str = opt("private", "choice", choices=("private", "host"))


@record
class SessionConfig:
    exec: str = opt("docker", "choice", choices=("docker", "nsenter"))
    spare: bool = opt(True, "bool")
    env_pass: tuple[str, ...] = opt(("TERM", "LANG", "LC_*", "TZ", "COLORTERM"), "strlist",
                                    user=True)
    banner: str = opt("", "str")
    forwarding: bool = opt(True, "bool")
    forward_agent: bool = opt(True, "bool")
    idle_timeout: str = opt("12h", "duration")
    idle_action: str = opt("stop", "choice", choices=("stop", "remove"))


@record
class UserConfigPolicy:
    allow: tuple[str, ...] = opt((), "strlist")
    images: tuple[tuple[str, str], ...] = opt((), "table")


@record
class EngineConfig:
    #: Which container engine runs the users' containers (dockersh/backend/registry.py).
    backend: str = opt("docker", "choice", choices=("docker", "podman"))


@record
class DockerConfig:
    host: str = opt("unix:///var/run/docker.sock", "str")
    lock_timeout: str = opt("30s", "duration")


@record
class PodmanConfig:
    host: str = opt("unix:///run/podman/podman.sock", "str")


@record
class AuditConfig:
    file: str = opt("/var/log/dockersh/audit.jsonl", "str")
    syslog: bool = opt(True, "bool")
    #: How long `gc` keeps recordings; "" (or "0") keeps them forever.
    keep: str = opt("90d", "duration", choices=("",))
    #: node_exporter's textfile collector file, written by `gc`; "" writes none.
    metrics_textfile: str = opt("/var/lib/prometheus/node-exporter/dockersh.prom", "path")
    #: Session recording (login/recording.py): per host, [groups.X] or [users.X], never by users.
    record: bool = opt(False, "bool")
    record_input: bool = opt(False, "bool")
    record_streams: bool = opt(False, "bool")
    max_size: str = opt("100m", "size")
    #: A recording is cut while its filesystem has less than this left for non-root users.
    min_free: str = opt("1g", "size")
    record_banner: str = opt("dockersh: this session is recorded", "str")
    sessions_dir: str = opt(SESSIONS_DIR, "path")


@record
class WebConfig:
    """``dockersh web``: the HTTPS terminal and API (read only by that verb, never at login)."""

    listen: str = opt("0.0.0.0:8022", "str")
    certificate: str = opt("/etc/dockersh/web/cert.pem", "path")
    key: str = opt("/etc/dockersh/web/key.pem", "path")
    user: str = opt("dockersh-web", "str")
    idle_timeout: str = opt("30m", "duration")
    session_timeout: str = opt("12h", "duration")
    reconnect_grace: str = opt("60s", "duration")
    max_failures: int = opt(5, "int")
    failure_window: str = opt("15m", "duration")
    lockout: str = opt("15m", "duration")


@record
class SecurityConfig:
    dangerously_allow_host_access: bool = opt(False, "bool")


@record
class TargetConfig:
    """``[targets.NAME]``: a container dockersh did not make and never changes, and who may
    enter it, as whom and how. Exactly one of ``container`` and ``label``."""

    container: str = opt("", "str")
    label: str = opt("", "str")
    users: tuple[str, ...] = opt((), "strlist")
    groups: tuple[str, ...] = opt((), "strlist")
    keys: tuple[str, ...] = opt((), "strlist")
    user: str = opt("", "str")
    shell: str = opt("/bin/sh", "path")
    exec: str = opt("docker", "choice", choices=("docker", "nsenter"))
    env: tuple[tuple[str, str], ...] = opt((), "table")
    banner: str = opt("", "str")
    workdir: str = opt("/", "path")


@record
class RouteConfig:
    """Where a user lands: ``[users.NAME] target = "T"`` or ``[groups.NAME] target = "T"``
    ("" = their own container)."""

    target: str = opt("", "str")


@record
class Config:
    container: ContainerConfig = field(default_factory=ContainerConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    user_config: UserConfigPolicy = field(default_factory=UserConfigPolicy)
    engine: EngineConfig = field(default_factory=EngineConfig)
    docker: DockerConfig = field(default_factory=DockerConfig)
    podman: PodmanConfig = field(default_factory=PodmanConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    web: WebConfig = field(default_factory=WebConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    route: RouteConfig = field(default_factory=RouteConfig)
    targets: tuple[tuple[str, TargetConfig], ...] = ()

    def engine_host(self) -> str:
        """Where the chosen back end's engine listens (each back end's own table)."""
        return self.podman.host if self.engine.backend == "podman" else self.docker.host


#: The tables of the global file (and of config show); ``route`` is set only inside
#: [users.X]/[groups.X] (as their ``target`` key), and ``targets`` are tables of their own.
SECTIONS: dict[str, type[Any]] = {f.name: f.default_factory
                                  for f in records.fields(Config)
                                  if f.name not in ("route", "targets")}
TABLES: dict[str, type[Any]] = {**SECTIONS, "route": RouteConfig, "target": TargetConfig}
#: Sections that [groups.X], [users.X] and a user's own file may contain.
PER_USER_SECTIONS = ("container", "session")
#: The [audit] keys [groups.X] and [users.X] may also set (a user's own file none of them: no
#: user turns their recording off); where the records and recordings go stays host-wide.
OVERRIDE_AUDIT = ("record", "record_input", "record_streams", "max_size", "record_banner")
USER_SETTABLE = frozenset(
    f"{section}.{f.name}"
    for section in PER_USER_SECTIONS
    for f in records.fields(SECTIONS[section])
    if f.metadata["user"]
)

if TYPE_CHECKING:  # only annotations name it
    Raw = dict[str, dict[str, Any]]


def fields_of(section: str) -> dict[str, records.Field]:
    return {f.name: f for f in records.fields(TABLES[section])}


class ConfigError(DockershError):
    """A config file is wrong: names the file, the table and the key."""

    def __init__(self, where: str, key: str, problem: str) -> None:
        text = f"{where}: {key}: {problem}" if key else f"{where}: {problem}"
        # Keys and values come from the file (a user's own, too): a newline or a terminal
        # escape in them must not make the one line two, or reach the terminal or syslog.
        super().__init__(escaped(text))


def parse_toml(text: str, where: str) -> dict[str, Any]:
    import tomllib  # here: a first login reads the global file's parse (plan.pipeline)

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message carries "(at line N, column M)"
        raise ConfigError(where, "", f"not valid TOML: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits (int() refuses it)
        raise ConfigError(where, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(where, "", "not valid TOML: nested too deeply") from None


def _value(kind: str, value: Any, choices: tuple[str, ...]) -> Any:
    """Check one value of a kind; return it in its frozen form, or raise ValueError."""
    if kind in ("str", "path", "choice", "size", "duration"):
        if kind in ("size", "duration") and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {type(value).__name__}")
        if "\0" in value or "\n" in value:
            raise ValueError("must not contain NUL or newline characters")
        if kind == "path" and value and not value.startswith("/"):
            raise ValueError(f"must be an absolute path, not {value!r}")
        if kind == "choice" and value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        if kind == "size" and (units.parse_size(value) or 0) <= 0:
            raise ValueError(f"bad size {value!r} (write e.g. 512m or 4g)")
        if kind == "duration" and value not in choices and units.parse_duration(value) is None:
            raise ValueError(f"bad duration {value!r} (write e.g. 30s, 15m, 12h, 7d; 0 = never)")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, not {type(value).__name__}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError("must be a positive integer")
        return value
    if kind == "float":
        # not "value <= 0": nan compares false with everything; inf and 1e308 are no CPU count
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not 0 < value < 2**31:
            raise ValueError("must be a positive number")
        return float(value)
    if kind in ("strlist", "caps"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be an array of strings")
        if any("\0" in v for v in value):
            raise ValueError("must not contain NUL characters")
        if kind == "caps":
            value = [v.upper().removeprefix("CAP_") for v in value]
            unknown = sorted(set(value) - ALL_CAPABILITIES)
            if unknown:
                raise ValueError(f"unknown capability {', '.join(unknown)}")
        return tuple(value)
    if kind == "table":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ValueError("must be a table of strings")
        if any("\0" in k or "=" in k or "\0" in v for k, v in value.items()):
            raise ValueError("names must not contain '=' or NUL, values no NUL")
        return tuple(sorted(value.items()))
    if kind == "mounts":
        if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
            raise ValueError("must be an array of tables {source, target, read_only}")
        mounts = []
        for m in value:
            extra = set(m) - {"source", "target", "read_only"}
            if extra:
                raise ValueError(f"unknown mount key {sorted(extra)[0]!r}")
            source, target = m.get("source"), m.get("target")
            if not (isinstance(source, str) and source.startswith("/")):
                raise ValueError("each mount needs an absolute source")
            if not (isinstance(target, str) and target.startswith("/")):
                raise ValueError("each mount needs an absolute target")
            read_only = m.get("read_only", True)
            if not isinstance(read_only, bool):
                raise ValueError("read_only must be true or false")
            mounts.append(Mount(source, target, read_only))
        return tuple(mounts)
    raise AssertionError(kind)


def validate_section(section: str, table: Any, where: str, prefix: str) -> dict[str, Any]:
    """One table of one file, checked key by key; unknown keys are errors (typos fail loudly)."""
    if not isinstance(table, dict):
        raise ConfigError(where, prefix.rstrip("."), "must be a table")
    known = fields_of(section)
    out = {}
    for key, value in table.items():
        f = known.get(key)
        if f is None:
            raise ConfigError(where, f"[{prefix.rstrip('.')}] {key}", "unknown key")
        try:
            out[key] = _value(f.metadata["kind"], value, f.metadata["choices"])
        except ValueError as exc:
            raise ConfigError(where, f"[{prefix.rstrip('.')}] {key}", str(exc)) from None
    return out


def validate_global(data: dict[str, Any], where: str) -> tuple[Raw, dict[str, Raw], dict[str, Raw]]:
    """The global file: its sections, and its [groups.X] and [users.X] overrides."""
    base: Raw = {}
    overrides: dict[str, dict[str, Raw]] = {"groups": {}, "users": {}}
    for key, table in data.items():
        if key in SECTIONS:
            base[key] = validate_section(key, table, where, key)
        elif key in overrides:
            if not isinstance(table, dict):
                raise ConfigError(where, key, "must be a table of tables")
            for name, sub in table.items():
                if not isinstance(sub, dict):
                    raise ConfigError(where, f"{key}.{name}", "must be a table")
                layer: Raw = {}
                for section, values in sub.items():
                    if section == "target":
                        layer["route"] = validate_section("route", {"target": values}, where,
                                                          f"{key}.{name}")
                        continue
                    if section == "audit":
                        for extra in sorted(set(values) - set(OVERRIDE_AUDIT)
                                            if isinstance(values, dict) else ()):
                            raise ConfigError(where, f"[{key}.{name}.audit] {extra}",
                                              "only " + ", ".join(OVERRIDE_AUDIT) +
                                              " may be set per group or user")
                    elif section not in PER_USER_SECTIONS:
                        raise ConfigError(where, f"[{key}.{name}] {section}",
                                          "only container, session and audit tables may go "
                                          "here")
                    layer[section] = validate_section(section, values, where,
                                                      f"{key}.{name}.{section}")
                overrides[key][name] = layer
        elif key == "targets":
            base["targets"] = validate_targets(table, where)
        else:
            raise ConfigError(where, key, "unknown table")
    for layer in (*overrides["groups"].values(), *overrides["users"].values()):
        wanted = layer.get("route", {}).get("target", "")
        if wanted and wanted not in base.get("targets", {}):
            raise ConfigError(where, f"target {wanted!r}", "there is no [targets] table of "
                              "that name")
    for entry in base.get("user_config", {}).get("allow", ()):
        if entry not in USER_SETTABLE:
            raise ConfigError(where, "[user_config] allow",
                              f"{entry!r} cannot be given to users (allowed: "
                              f"{', '.join(sorted(USER_SETTABLE))})")
    return base, overrides["groups"], overrides["users"]


def validate_targets(table: Any, where: str) -> dict[str, TargetConfig]:
    """``[targets.NAME]`` tables: each names its container one way, and its user explicitly."""
    if not isinstance(table, dict):
        raise ConfigError(where, "targets", "must be a table of tables")
    targets = {}
    for name, sub in table.items():
        values = validate_section("target", sub, where, f"targets.{name}")
        target = TargetConfig(**values)
        if bool(target.container) == bool(target.label):
            raise ConfigError(where, f"[targets.{name}]", "needs container or label (one)")
        if any(not k.startswith("SHA256:") for k in target.keys):
            raise ConfigError(where, f"[targets.{name}] keys", "fingerprints as ssh-keygen -l "
                              "prints them: SHA256:...")
        if target.label and "=" not in target.label:
            raise ConfigError(where, f"[targets.{name}] label", "must be key=value")
        if target.user not in ("", "root") and not all(
                part.isdigit() for part in target.user.split(":", 1)):
            raise ConfigError(where, f"[targets.{name}] user",
                              'must be "" (the caller\'s ids), "root" or "UID[:GID]"')
        targets[name] = target
    return targets


def validate_user_file(data: dict[str, Any], where: str, policy: UserConfigPolicy) -> Raw:
    """A user's own file: only keys the admin allows; an image only by alias."""
    layer: Raw = {}
    aliases = dict(policy.images)
    for section, table in data.items():
        if section not in PER_USER_SECTIONS or not isinstance(table, dict):
            raise ConfigError(where, section, "not allowed in your file")
        for key in table:
            if f"{section}.{key}" not in policy.allow:
                raise ConfigError(where, f"[{section}] {key}", "not allowed by the administrator")
        values = validate_section(section, table, where, section)
        if "image" in values:
            alias = values["image"]
            if alias not in aliases:
                raise ConfigError(where, "[container] image",
                                  f"unknown image alias (choose from: "
                                  f"{', '.join(sorted(aliases)) or 'none offered'})")
            values["image"] = aliases[alias]
        layer[section] = values
    return layer


def merge(layers: list[Raw]) -> Raw:
    """Later layers win key by key; ``env`` tables merge name by name."""
    out: Raw = {}
    for layer in layers:
        for section, values in layer.items():
            target = out.setdefault(section, {})
            for key, value in values.items():
                if key == "env" and key in target:
                    value = tuple(sorted({**dict(target[key]), **dict(value)}.items()))
                target[key] = value
    return out


def build(raw: Raw) -> Config:
    return Config(**{s: SECTIONS[s](**raw.get(s, {})) for s in SECTIONS},
                  route=RouteConfig(**raw.get("route", {})),
                  targets=tuple(sorted(raw.get("targets", {}).items())))


def dangers(config: Config) -> list[str]:
    """Settings that give a session the host (root-equivalent), each in one line."""
    c = config.container
    found = []
    if c.privileged:
        found.append("[container] privileged = true")
    for ns in ("pid", "ipc"):
        if getattr(c, ns) == "host":
            found.append(f'[container] {ns} = "host"')
    if c.network == "host" or c.network.startswith("container:"):
        found.append(f'[container] network = "{c.network}"')
    if c.devices:
        found.append("[container] devices gives host devices")
    for cap in sorted(set(c.cap_add) - SAFE_CAPABILITIES):
        found.append(f"[container] cap_add {cap}")
    for m in c.mounts:
        if dangerous_source(m.source):
            found.append(f"[container] mounts source {m.source}")
    return found


def dangerous_source(path: str) -> bool:
    """A mount source that hands out the host: one of DANGEROUS_SOURCES, anything inside the
    runtime's and the kernel's trees, a directory above them, or a socket. Spelled any way
    ("//run", "/var/run/", "/srv/../run") and through the host's symlinks as they are now
    (/var/lock is /run/lock, a link to / is /): Docker resolves both."""
    spelled = "/" + posixpath.normpath(path).lstrip("/")
    try:
        resolved = os.path.realpath(spelled)
    except OSError:  # a link this root cannot read (/proc/1/root): cannot tell, so refuse
        return True
    return _dangerous(spelled) or _dangerous(resolved)


def _dangerous(source: str) -> bool:
    inside = ("/proc", "/sys", "/dev", "/run", "/var/run", "/var/lib/docker",
              "/var/lib/containerd", "/var/lib/containers", "/boot")
    return (source in DANGEROUS_SOURCES or "docker.sock" in source or source.endswith(".sock")
            or any(source == d or source.startswith(d + "/") for d in inside)
            or any(d.startswith(source + "/") for d in inside))


def check_dangers(config: Config, where: str, origin: str = "") -> None:
    """Refuse root-equivalent settings unless the danger switch is on; ``origin`` names the
    [groups.X] or [users.X] override that brought them, when known."""
    if config.security.dangerously_allow_host_access:
        return
    found = dangers(config)
    if found:
        raise ConfigError(where, origin + found[0], "gives sessions root on the host; refused "
                          "(set [security] dangerously_allow_host_access = true to allow)")


def global_layers(data: dict[str, Any], where: str, user_name: str,
                  group_names: tuple[str, ...]) -> tuple[list[Raw], UserConfigPolicy]:
    """The admin's layers that apply to one user, and the policy for that user's own file."""
    base, groups, users = validate_global(data, where)
    layers = [base]
    layers += [layer for name, layer in groups.items() if name in group_names]
    if user_name in users:
        layers.append(users[user_name])
    policy = UserConfigPolicy(**base.get("user_config", {}))
    return layers, policy


def resolve(global_data: dict[str, Any], where: str, user_name: str,
            group_names: tuple[str, ...], user_layer: Raw | None = None) -> Config:
    """The effective config for one user (the user's layer already checked against the policy)."""
    layers, _ = global_layers(global_data, where, user_name, group_names)
    config = build(merge([*layers, user_layer or {}]))
    check_dangers(config, where)
    return config


def to_toml_data(config: Config) -> dict[str, Any]:
    """The config as TOML-ready data (for ``dockersh config show``)."""
    out: dict[str, Any] = {}
    for section in SECTIONS:
        values = {}
        for key, value in records.asdict(getattr(config, section)).items():
            kind = fields_of(section)[key].metadata["kind"]
            if kind == "table":
                value = dict(value)
            elif kind == "mounts":
                value = [dict(m) for m in value]
            elif isinstance(value, tuple):
                value = list(value)
            values[key] = value
        out[section] = values
    return out
