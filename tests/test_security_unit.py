"""Adversarial unit tests: the pure layers an attacker reaches first.

- invocation: nothing after ``-c`` (nor argv[0], nor SSH_ORIGINAL_COMMAND) is ever an option;
- cli: a caller that sudo proved to be someone else cannot use a root-only option or verb,
  and every refusal is one ``dockersh:`` line, never a traceback;
- the user's own ``~/.dockersh.toml``: real files on disk (a symlink to /etc/shadow, a FIFO, a
  100 MB sparse file, someone else's file, a hard link, invalid UTF-8, deep nesting, ...) are
  refused with one line, the login goes on with the admin's config, and not one byte of the
  target is ever printed;
- the user's file can never set privileges, capabilities, mounts, devices, namespaces,
  the runtime or a limit, and images only by alias;
- the admin's config: root-equivalent values are refused unless the loudly named switch is on,
  and ``dockersh config check`` warns while it is.

Runs as root (tests/run does): it makes files owned by other uids, a FIFO and device nodes.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dockersh import cli
from dockersh.config import schema, userfile
from dockersh.config.schema import ConfigError
from dockersh.errors import DockershError
from dockersh.login import identity
from dockersh.login.invocation import Invocation, parse
from dockersh.paths import USER_FILE
from dockersh.plan import pipeline, planner

#: A uid and gid that no account has: the files of the "user" under test.
UID = 54321
GID = 54321
#: Written into every file the user must not get read to them; never in any output.
CANARY = "CANARY-7f3a9c-secret"
#: TOML that, if it were ever parsed, would put the canary into an error message.
CANARY_TOML = f'[{CANARY}]\n"{CANARY}" = "{CANARY}"\n'


# --- invocation: options end at -c ---------------------------------------------------------

INJECTIONS = [
    "--user root",
    "--user=root",
    "--config /tmp/evil.toml",
    "--config=/etc/shadow",
    "--debug",
    "config check",
    "config show root",
    "rm alice",
    "enroll mallory",
    "-c",
    "--help",
    "--version",
    "-l",
    "--user root -c id",
    "id\n--user root",
    "echo 'a\nb' \"c\\\"d\" $(id) `id` ; --debug",
    "\x00--user root",
    "--user root" * 10000,
]


@pytest.mark.parametrize("command", INJECTIONS)
def test_text_after_dash_c_is_never_an_option(command: str) -> None:
    inv = parse(["dockersh", "-c", command], {})
    assert inv == Invocation(command=command)
    assert inv.privileged_options == []


@pytest.mark.parametrize("command", INJECTIONS)
def test_arguments_after_the_command_are_data_too(command: str) -> None:
    inv = parse(["dockersh", "-c", "id", command, "--config", "/x"], {})
    assert inv == Invocation(command="id", args=(command, "--config", "/x"))


def test_a_hundred_kilobyte_command_arrives_whole() -> None:
    command = "echo " + "x" * 100_000 + "\n" + "'\"" * 100
    assert parse(["dockersh", "-c", command], {}).command == command


@pytest.mark.parametrize("argv0", ["--user=root", "--config=/tmp/evil.toml", "--debug", "-c",
                                   "config", "-dockersh", "", "/usr/local/bin/dockersh"])
def test_argv0_is_never_read(argv0: str) -> None:
    assert parse([argv0], {}) == Invocation()
    assert parse([argv0, "-c", "id"], {}) == Invocation(command="id")


@pytest.mark.parametrize("original", INJECTIONS)
def test_ssh_original_command_is_only_a_command(original: str) -> None:
    env = {"SSH_ORIGINAL_COMMAND": original}
    for argv in (["dockersh"], ["-dockersh"], ["dockersh", "-c", "/usr/local/bin/dockersh"],
                 ["dockersh", "-c", "dockersh"]):
        inv = parse(argv, env)
        assert inv == Invocation(command=original, forced=True), argv
        assert inv.privileged_options == []


def test_ssh_original_command_cannot_replace_a_given_command() -> None:
    assert parse(["dockersh", "-c", "id"], {"SSH_ORIGINAL_COMMAND": "--user root"}) == \
        Invocation(command="id")


def test_verbs_only_as_the_first_argument() -> None:
    with pytest.raises(DockershError, match="unknown option"):
        parse(["dockersh", "--user", "bob", "config", "check"], {})
    assert parse(["dockersh", "-c", "config"], {}).verb == ()


# --- cli: what a caller proved by sudo may not do -----------------------------------------


@pytest.fixture
def as_sudo_caller(monkeypatch: pytest.MonkeyPatch,
                   tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment sudo gives the privileged part when uid UID ran it; the global config
    a file of the test's own (its audit records in tmp_path/audit.jsonl)."""
    env = {"SUDO_UID": str(UID), "SUDO_GID": str(GID), "SUDO_USER": "mallory",
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    monkeypatch.setattr(os, "environ", env)
    config = tmp_path / "dockersh.toml"
    config.write_text(f'[audit]\nfile = "{tmp_path}/audit.jsonl"\nsyslog = false\n')
    monkeypatch.setattr(cli, "GLOBAL_CONFIG", str(config))
    yield env


def failed_logins(tmp_path: Path) -> list[dict[str, Any]]:
    import json

    audit = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []


@pytest.mark.parametrize("argv, refused", [
    (["--config", "/tmp/evil.toml", "-c", "id"], "--config"),
    (["--config=/tmp/evil.toml"], "--config"),
    (["--debug", "-c", "id"], "--debug"),
    (["config", "check"], "config"),
    (["config", "show", "root"], "config"),
    (["ls"], "ls"),
    (["rm", "alice"], "rm"),
    (["stop", "alice"], "stop"),
    (["gc", "--idle", "0"], "gc"),
    (["enroll", "mallory"], "enroll"),
    (["unenroll", "alice"], "unenroll"),
    (["doctor"], "doctor"),
    (["pull", "--all"], "pull"),
    (["sessions"], "sessions"),
    (["replay", "20261202T061530Z-alice-12345"], "replay"),
    (["metrics"], "metrics"),
])
def test_root_only_options_and_verbs_are_refused_to_a_sudo_caller(
    as_sudo_caller: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str],
    refused: str,
) -> None:
    status = cli.main(["/opt/dockersh/sbin/dockersh", *argv])
    out, err = capsys.readouterr()
    assert status != 0
    assert out == ""
    assert err == f"dockersh: only root may use {refused}\n"


def test_another_users_session_needs_their_password(
    as_sudo_caller: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """--user root (or anyone) by someone else: PAM, and with no terminal no way to ask."""
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    status = cli.main(["/opt/dockersh/sbin/dockersh", "--user", "root", "-c", "id"])
    out, err = capsys.readouterr()
    assert status != 0 and out == ""
    assert err == "dockersh: a password for root is needed and there is no terminal to ask on\n"
    [record] = failed_logins(tmp_path)  # for dockersh_logins_total{result="refused"}
    assert (record["event"], record["user"], record["uid"]) == ("login-refused", "root", 0)
    assert record["reason"] == err.removeprefix("dockersh: ").rstrip("\n")


def test_a_sudo_caller_never_gets_a_traceback(
    as_sudo_caller: dict[str, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(identity, "by_uid", boom)
    status = cli.main(["/opt/dockersh/sbin/dockersh", "--debug", "-c", "id"])
    assert status != 0
    assert capsys.readouterr().err == "dockersh: only root may use --debug\n"
    status = cli.main(["/opt/dockersh/sbin/dockersh", "-c", "id", "--debug"])
    out, err = capsys.readouterr()
    assert status == 125 and out == ""
    assert err.count("\n") == 1 and err.startswith("dockersh: internal error (RuntimeError")
    assert "Traceback" not in err
    [record] = failed_logins(tmp_path)  # only the login, not the refused --debug
    assert (record["event"], record["user"], record["uid"]) == ("login-error", None, UID)
    assert record["reason"] == "internal error: RuntimeError: unexpected"


def test_sudo_uid_must_be_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DockershError, match="SUDO_UID is not a number"):
        identity.caller_uid({"SUDO_UID": "0 "})
    with pytest.raises(DockershError, match="SUDO_UID is not a number"):
        identity.caller_uid({"SUDO_UID": "-1"})


def test_user_environment_never_decides_the_identity() -> None:
    """$USER, $LOGNAME, $HOME are the caller's to forge: only SUDO_UID (set by sudo) counts."""
    env = {"SUDO_UID": str(UID), "USER": "root", "LOGNAME": "root", "HOME": "/root"}
    assert identity.caller_uid(env) == (UID, True)


# --- the user's own file, as real files on disk ---------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home directory owned by UID, in a directory only root can write."""
    base = tmp_path / "homes"
    base.mkdir(mode=0o755)
    h = base / "mallory"
    h.mkdir(mode=0o755)
    os.chown(h, UID, GID)
    return h


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A root-only secret elsewhere on the host, in TOML that would echo the canary."""
    secret = tmp_path / "secret.toml"
    secret.write_text(CANARY_TOML)
    secret.chmod(0o600)
    return secret


def mallory(home: Path) -> identity.User:
    return identity.User("mallory", UID, GID, str(home), "/bin/sh", "",
                         (("mallory", GID),))


POLICY = schema.UserConfigPolicy(allow=tuple(sorted(schema.USER_SETTABLE)),
                                 images=(("py", "python:3.12-slim"),))


def user_layer(home: Path) -> tuple[schema.Raw, list[str]]:
    """The user's layer as a login computes it, under a watchdog: a FIFO must not block."""
    def stuck(*_: Any) -> None:
        raise TimeoutError("reading the user's file blocked")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(10)
    try:
        return pipeline.user_layer(mallory(home), POLICY)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_refused(home: Path, reason: str, *secrets: str) -> None:
    layer, warnings = user_layer(home)
    path = home / USER_FILE
    assert layer == {}
    assert warnings == [f"{path}: ignored: {reason}"]
    for secret in (CANARY, *secrets):
        assert secret not in warnings[0]


def shadow_secrets() -> list[str]:
    """Pieces of /etc/shadow that must never show: every password field that is set."""
    fields = [line.split(":")[1] for line in Path("/etc/shadow").read_text().splitlines()
              if line.count(":") >= 2]
    return [f for f in fields if len(f) > 3]


def own(path: Path) -> None:
    os.chown(path, UID, GID, follow_symlinks=False)


def test_symlink_to_etc_shadow_is_refused(home: Path) -> None:
    link = home / USER_FILE
    link.symlink_to("/etc/shadow")
    own(link)
    assert_refused(home, "it is a symbolic link", *shadow_secrets())


def test_symlink_to_a_root_file_is_refused(home: Path, victim: Path) -> None:
    link = home / USER_FILE
    link.symlink_to(victim)
    own(link)
    assert_refused(home, "it is a symbolic link")


def test_symlink_to_the_users_own_file_is_refused(home: Path) -> None:
    """The last component is never followed, whatever it points at."""
    real = home / "real.toml"
    real.write_text(CANARY_TOML)
    own(real)
    link = home / USER_FILE
    link.symlink_to(real)
    own(link)
    assert_refused(home, "it is a symbolic link")


def test_fifo_is_refused_without_blocking(home: Path) -> None:
    fifo = home / USER_FILE
    os.mkfifo(fifo, 0o644)
    own(fifo)
    assert_refused(home, "it is not a regular file")


def test_device_node_is_refused(home: Path) -> None:
    node = home / USER_FILE
    os.mknod(node, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero
    own(node)
    assert_refused(home, "it is not a regular file")


def test_directory_is_refused(home: Path) -> None:
    d = home / USER_FILE
    d.mkdir()
    own(d)
    assert_refused(home, "it is not a regular file")


def test_hundred_megabyte_sparse_file_is_refused_unread(home: Path) -> None:
    big = home / USER_FILE
    with big.open("wb") as f:
        f.write(CANARY_TOML.encode())
        f.truncate(100 * 2**20)
    own(big)
    assert_refused(home, "it is larger than 64 KiB")


def test_someone_elses_file_is_refused_unread(home: Path) -> None:
    """A file in the user's home that root (or another user) owns: never read."""
    other = home / USER_FILE
    other.write_text(CANARY_TOML)
    other.chmod(0o644)
    assert_refused(home, "it is not owned by you")
    os.chown(other, UID + 1, GID + 1)
    assert_refused(home, "it is not owned by you")


def test_hard_link_to_a_root_file_is_refused_unread(home: Path, victim: Path) -> None:
    link = home / USER_FILE
    os.link(victim, link)  # fs.protected_hardlinks stops users; root makes it to test the check
    assert_refused(home, "it is not owned by you")


def test_hard_link_is_refused_even_when_owned(home: Path, tmp_path: Path) -> None:
    """A second name for a file (say one that root later copies elsewhere) is not the file."""
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(CANARY_TOML)
    own(elsewhere)
    os.link(elsewhere, home / USER_FILE)
    assert_refused(home, "it has more than one hard link")


def test_invalid_utf8_is_refused(home: Path) -> None:
    bad = home / USER_FILE
    bad.write_bytes(b'[container]\nhostname = "' + CANARY.encode() + b'\xff\xfe"\n')
    own(bad)
    assert_refused(home, "it is not valid UTF-8")


@pytest.mark.parametrize("text", [
    "a = " + "[" * 30_000,
    "a = " + "{ b = " * 10_000,
    "a = " + "[" * 20_000 + "]" * 20_000,
    "[" + ".".join(["x"] * 10_000) + "]\n",
])
def test_deep_nesting_is_refused_with_one_line(home: Path, text: str) -> None:
    f = home / USER_FILE
    f.write_text(text)
    own(f)
    layer, warnings = user_layer(home)
    assert layer == {}
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"{f}: ") and warnings[0].endswith("; the file is ignored")


@pytest.mark.parametrize("text", [
    "x = " + "1" * 5000,               # int() refuses more than 4300 digits: a ValueError
    "x = 0x" + "f" * 5000,
    '[container]\nhostname = "' + "h" * 60_000 + '"\n',
    "x = 1979-02-30\n",
    "x = 25:00:00\n",
    "x = inf\ny = nan\n",
])
def test_odd_toml_never_locks_the_user_out(home: Path, text: str) -> None:
    """Whatever the user writes, the login goes on: their file is ignored with one line."""
    f = home / USER_FILE
    f.write_text(text)
    own(f)
    _, warnings = user_layer(home)
    assert len(warnings) <= 1
    assert all("\n" not in w for w in warnings)


# What a user's own file may never set, even when an admin lists every settable key.
FORBIDDEN = [
    ("container", "privileged", "true"),
    ("container", "cap_add", '["SYS_ADMIN"]'),
    ("container", "mounts", '[{ source = "/", target = "/host", read_only = false }]'),
    ("container", "devices", '["/dev/sda"]'),
    ("container", "network", '"host"'),
    ("container", "pid", '"host"'),
    ("container", "ipc", '"host"'),
    ("container", "security_opt", '["seccomp=unconfined"]'),
    ("container", "userns", '"host"'),
    ("container", "runtime", '"runc"'),
    ("container", "memory", '"1t"'),
    ("container", "cpus", "64"),
    ("container", "pids_limit", "1000000"),
    ("container", "read_only", "false"),
    ("container", "tmpfs", '["/tmp"]'),
    ("container", "command", '["sh"]'),
    ("container", "name", '"dockersh-root"'),
    ("container", "pull", '"always"'),
    ("session", "exec", '"nsenter"'),
    ("session", "banner", '"hi"'),
    ("security", "dangerously_allow_host_access", "true"),
    ("docker", "host", '"unix:///tmp/evil.sock"'),
    ("docker", "cli", '"/tmp/evil"'),
    ("user_config", "allow", '["container.privileged"]'),
    ("audit", "file", '""'),
    ("groups.dockersh.container", "privileged", "true"),
    ("users.mallory.container", "privileged", "true"),
]


@pytest.mark.parametrize("section, key, value", FORBIDDEN)
def test_user_file_cannot_set_dangerous_keys(home: Path, section: str, key: str,
                                             value: str) -> None:
    f = home / USER_FILE
    f.write_text(f'[{section}]\n{key} = {value}\n[container]\nhostname = "{CANARY}"\n'
                 if section != "container" else
                 f'[{section}]\nhostname = "ok"\n{key} = {value}\n')
    own(f)
    layer, warnings = user_layer(home)
    assert layer == {}  # the whole file is ignored, not just the key
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].endswith("; the file is ignored")
    assert CANARY not in warnings[0]


def test_no_dangerous_key_can_ever_be_given_to_users() -> None:
    settable = {k.split(".")[1] for k in schema.USER_SETTABLE}
    assert settable <= {"image", "shell", "hostname", "env", "env_pass"}
    for key in ("privileged", "cap_add", "mounts", "devices", "network", "pid", "ipc",
                "runtime", "memory", "cpus", "pids_limit", "exec"):
        text = f'[user_config]\nallow = ["container.{key}", "session.{key}"]\n'
        with pytest.raises(ConfigError, match="cannot be given to users"):
            schema.validate_global(schema.parse_toml(text, "g"), "g")


@pytest.mark.parametrize("image", ["alpine:latest", "python:3.12-slim", "dockersh-session:latest",
                                   "docker.io/library/busybox", "PY", " py", "py:latest"])
def test_user_image_only_by_alias(home: Path, image: str) -> None:
    f = home / USER_FILE
    f.write_text(f'[container]\nimage = "{image}"\n')
    own(f)
    layer, warnings = user_layer(home)
    assert layer == {}
    assert len(warnings) == 1 and "unknown image alias (choose from: py)" in warnings[0]


def test_user_image_alias_maps_to_the_admins_image(home: Path) -> None:
    f = home / USER_FILE
    f.write_text('[container]\nimage = "py"\n')
    own(f)
    assert user_layer(home) == ({"container": {"image": "python:3.12-slim"}}, [])


def test_user_env_names_cannot_smuggle_options(home: Path) -> None:
    """`-e NAME=VALUE` pairs reach the docker CLI: names with '=' or NUL are refused."""
    for bad in ('"A=B" = "x"', '"A\\u0000" = "x"'):
        f = home / USER_FILE
        f.write_text(f"[container]\nenv = {{ {bad} }}\n")
        own(f)
        assert user_layer(home)[0] == {}


# --- the admin's config: root-equivalent values need the switch ----------------------------

DANGEROUS = [
    ("privileged = true", "privileged"),
    ('pid = "host"', 'pid = "host"'),
    ('ipc = "host"', 'ipc = "host"'),
    ('network = "host"', 'network = "host"'),
    ('devices = ["/dev/sda"]', "devices"),
    ('cap_add = ["SYS_ADMIN"]', "cap_add SYS_ADMIN"),
    ('cap_add = ["cap_sys_module"]', "cap_add SYS_MODULE"),
    ('cap_add = ["DAC_READ_SEARCH"]', "cap_add DAC_READ_SEARCH"),
    ('mounts = [{ source = "/var/run/docker.sock", target = "/d.sock" }]', "docker.sock"),
    ('mounts = [{ source = "/run/docker.sock", target = "/d.sock" }]', "docker.sock"),
    ('mounts = [{ source = "/var/run", target = "/x" }]', "/var/run"),
    ('mounts = [{ source = "/run/", target = "/x" }]', "/run"),
    ('mounts = [{ source = "/", target = "/host" }]', "source /"),
    ('mounts = [{ source = "/etc", target = "/x" }]', "/etc"),
    ('mounts = [{ source = "/var/lib/docker", target = "/x" }]', "/var/lib/docker"),
    ('mounts = [{ source = "/run/containerd/containerd.sock", target = "/x" }]', ".sock"),
    ('mounts = [{ source = "/proc", target = "/x" }]', "/proc"),
    ('mounts = [{ source = "/root", target = "/x" }]', "/root"),
    # The same places spelled otherwise, inside them, or above them.
    ('mounts = [{ source = "//run", target = "/x" }]', "//run"),
    ('mounts = [{ source = "/srv/../var/run", target = "/x" }]', "/srv/../var/run"),
    ('mounts = [{ source = "/run/containerd", target = "/x" }]', "/run/containerd"),
    ('mounts = [{ source = "/run/docker/", target = "/x" }]', "/run/docker/"),
    ('mounts = [{ source = "/var/lib", target = "/x" }]', "/var/lib"),
    ('mounts = [{ source = "/var", target = "/x" }]', "source /var"),
    ('mounts = [{ source = "/var/lib/docker/volumes", target = "/x" }]', "volumes"),
    ('mounts = [{ source = "/var/lib/containers", target = "/x" }]', "/var/lib/containers"),
    ('mounts = [{ source = "/run/podman/podman.sock", target = "/x" }]', "podman.sock"),
    ('mounts = [{ source = "/dev/shm", target = "/x" }]', "/dev/shm"),
    ('mounts = [{ source = "/sys/fs/cgroup", target = "/x" }]', "/sys/fs/cgroup"),
    ('mounts = [{ source = "/proc/1/root", target = "/x" }]', "/proc/1/root"),
    ('mounts = [{ source = "/var/lib/containerd", target = "/x" }]', "/var/lib/containerd"),
    # A symlink on this host: /var/lock is /run/lock (Debian's base-files makes it).
    ('mounts = [{ source = "/var/lock", target = "/x" }]', "/var/lock"),
    ('network = "container:dockersh-bob"', "container:dockersh-bob"),
]


@pytest.mark.parametrize("line", [
    'mounts = [{ source = "/srv/data", target = "/data" }]',
    'mounts = [{ source = "/etc/ssl/certs", target = "/certs" }]',
    'mounts = [{ source = "/home/shared", target = "/shared", read_only = false }]',
    'mounts = [{ source = "/variable", target = "/v" }]',
    'network = "none"',
    'network = "dockersh-net"',
    'cap_add = ["CHOWN", "NET_BIND_SERVICE"]',
])
def test_ordinary_admin_values_need_no_switch(line: str) -> None:
    schema.resolve(schema.parse_toml(f"[container]\n{line}\n", "g"), "g", "alice", ())


@pytest.mark.parametrize("line, named", DANGEROUS)
def test_admin_dangerous_values_need_the_switch(line: str, named: str) -> None:
    text = f"[container]\n{line}\n"
    with pytest.raises(ConfigError, match="gives sessions root on the host") as caught:
        schema.resolve(schema.parse_toml(text, "g"), "g", "alice", ())
    assert named in caught.value.message
    assert "dangerously_allow_host_access" in caught.value.message
    allowed = text + "[security]\ndangerously_allow_host_access = true\n"
    schema.resolve(schema.parse_toml(allowed, "g"), "g", "alice", ())


@pytest.mark.parametrize("line", [line for line, _ in DANGEROUS])
def test_dangerous_values_are_refused_in_group_and_user_tables_too(line: str) -> None:
    for table in ("groups.staff.container", "users.alice.container"):
        text = f"[{table}]\n{line}\n"
        with pytest.raises(ConfigError, match="gives sessions root on the host"):
            schema.resolve(schema.parse_toml(text, "g"), "g", "alice", ("staff",))


@pytest.mark.parametrize("target, below", [
    ("/", ""), ("/proc", ""), ("/var/lib", "docker"), ("/run", "lock"), ("/etc", ""),
    ("../" * 20 + "sys", "fs"),  # a relative link
])
def test_mount_sources_are_resolved_through_symlinks(tmp_path: Path, target: str,
                                                     below: str) -> None:
    """Docker follows symlinks in a bind source: /srv/x -> / mounts the host's root, so the
    check walks them too (at create, `config check` and `doctor` alike)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "link").symlink_to(target)
    source = str(tmp_path / "a" / "link" / below).rstrip("/")
    text = f'[container]\nmounts = [{{ source = "{source}", target = "/x" }}]\n'
    with pytest.raises(ConfigError, match="gives sessions root on the host"):
        schema.resolve(schema.parse_toml(text, "g"), "g", "alice", ())
    (tmp_path / "a" / "link").unlink()
    (tmp_path / "a" / "link").mkdir()  # the same spelling, a plain directory: fine
    schema.resolve(schema.parse_toml(text, "g"), "g", "alice", ())


def test_config_check_resolves_symlinked_mount_sources(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    (tmp_path / "root").symlink_to("/")
    path = write_global(tmp_path, f'[container]\nmounts = [{{ source = "{tmp_path}/root", '
                                  'target = "/x" }]\n')
    assert cli.main(["dockersh", "--config", path, "config", "check"]) == 125
    assert "gives sessions root on the host" in capsys.readouterr().err


def test_unknown_capability_is_refused_even_with_the_switch() -> None:
    text = ('[container]\ncap_add = ["SYS_EVERYTHING"]\n'
            "[security]\ndangerously_allow_host_access = true\n")
    with pytest.raises(ConfigError, match="unknown capability SYS_EVERYTHING"):
        schema.resolve(schema.parse_toml(text, "g"), "g", "alice", ())


@pytest.mark.parametrize("key", ["security_opt", "userns", "volumes", "binds", "cap_drop",
                                 "host_config", "extra_hosts", "sysctls", "ulimits",
                                 "cgroup_parent", "oom_kill_disable"])
def test_raw_docker_host_config_cannot_be_passed_through(key: str) -> None:
    """Unlike ContainerSSH, no Docker option reaches the engine unless dockersh knows it."""
    with pytest.raises(ConfigError, match="unknown key"):
        schema.resolve(schema.parse_toml(f'[container]\n{key} = "x"\n', "g"), "g", "a", ())


def write_global(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dockersh.toml"
    path.write_text(text)
    return str(path)


def test_config_check_refuses_danger_without_the_switch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SUDO_UID", raising=False)
    path = write_global(tmp_path, "[groups.staff.container]\nprivileged = true\n")
    status = cli.main(["dockersh", "--config", path, "config", "check"])
    out, err = capsys.readouterr()
    assert status != 0 and out == ""
    assert err.startswith(f"dockersh: {path}: ") and err.count("\n") == 1
    assert "privileged" in err and "dangerously_allow_host_access" in err


def test_config_check_warns_while_the_switch_is_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SUDO_UID", raising=False)
    path = write_global(tmp_path, '[container]\nprivileged = true\nnetwork = "host"\n'
                                  "[security]\ndangerously_allow_host_access = true\n")
    status = cli.main(["dockersh", "--config", path, "config", "check"])
    err = capsys.readouterr().err
    assert status == 0
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert any("privileged" in w for w in warnings)
    assert any('network = "host"' in w for w in warnings)


def test_every_danger_is_in_the_plan_only_with_the_switch() -> None:
    """The container spec carries exactly the validated values: nothing is added on the way."""
    user = identity.User("alice", 1000, 1000, "/home/alice", "/bin/sh", "", (("alice", 1000),))
    spec = planner.make(schema.resolve({}, "g", "alice", ()), user, "host").spec
    assert (spec.privileged, spec.devices, spec.pid, spec.ipc, spec.network, spec.cap_add) == \
        (False, (), "private", "private", "bridge", ())
    assert spec.user == "1000:1000"
    assert [m[0] for m in spec.mounts] == ["/home/alice", "/var/lib/dockersh/dockersh-alice/passwd",
                                            "/var/lib/dockersh/dockersh-alice/group",
                                            "/opt/dockersh/libexec/dockersh-exec"]
    assert all(m[2] for m in spec.mounts[1:])  # passwd, group and the exec helper read-only


def test_userfile_reader_refuses_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                victim: Path) -> None:
    """userfile.read never calls read() on a file it refuses."""
    reads: list[int] = []
    real_read = os.read

    def spy(fd: int, n: int) -> bytes:
        reads.append(fd)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", spy)
    with pytest.raises(userfile.Refused):
        userfile.read(str(victim), UID)
    assert reads == []


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


# --- bind-mount sources the user could redirect --------------------------------------------


def test_bind_sources_the_user_can_change_are_found(tmp_path: Path) -> None:
    from dockersh.lifecycle import bindcheck

    root = tmp_path / "srv"
    root.mkdir(mode=0o755)
    user = identity.User("mallory", UID, GID, "/nonexistent", "/bin/sh", "",
                         (("mallory", GID), ("staff", GID + 7)))
    theirs = root / "theirs"
    theirs.mkdir()
    os.chown(theirs, UID, GID)
    (theirs / "data").mkdir()
    safe = root / "safe"
    safe.mkdir()
    assert bindcheck.changeable_part(str(safe), user) is None
    assert bindcheck.changeable_part(str(theirs), user) is None  # owning it is not enough
    assert bindcheck.changeable_part(str(theirs / "data"), user) == str(theirs / "data")
    theirs.chmod(0o555)  # an owner can always chmod it back
    assert bindcheck.changeable_part(str(theirs / "data"), user) == str(theirs / "data")
    group = root / "group"
    group.mkdir()
    os.chown(group, 0, GID + 7)
    group.chmod(0o775)
    (group / "x").mkdir()
    assert bindcheck.changeable_part(str(group / "x"), user) == str(group / "x")
    sticky = root / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "roots").mkdir()
    (sticky / "mine").mkdir()
    os.chown(sticky / "mine", UID, GID)
    assert bindcheck.changeable_part(str(sticky / "roots"), user) is None
    assert bindcheck.changeable_part(str(sticky / "mine"), user) == str(sticky / "mine")
    assert bindcheck.changeable_part(str(sticky / "absent"), user) == str(sticky / "absent")
    # A symlink root made, leading through a directory the user owns.
    (root / "link").symlink_to(theirs / "data")
    assert bindcheck.changeable_part(str(root / "link"), user) == str(theirs / "data")
    (root / "dots").symlink_to("safe/../theirs/data")
    assert bindcheck.changeable_part(str(root / "dots"), user) == str(theirs / "data")
    with pytest.raises(DockershError, match=f"mount source {root}/link is not safe"):
        bindcheck.check([str(safe), str(root / "link")], user)


@pytest.mark.parametrize("text", [
    '["a\\nb"]\nx = 1\n',
    '[container]\n"\\u001b[2J\\u001b]0;pwned\\u0007" = 1\n',
    '[container]\n"x\\ry" = 1\n',
])
def test_config_errors_stay_one_printable_line(home: Path, text: str) -> None:
    """A key with a newline or a terminal escape in a user's file: still one line, escaped."""
    f = home / USER_FILE
    f.write_text(text)
    own(f)
    _, warnings = user_layer(home)
    assert len(warnings) == 1 and warnings[0].isprintable(), warnings


def test_an_end_record_the_audit_file_refuses_goes_to_syslog(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session already ran: its end is never dropped silently, syslog gets it instead."""
    import syslog

    from dockersh.login import audit

    said: list[tuple[int, str]] = []
    monkeypatch.setattr(syslog, "syslog", lambda priority, line: said.append((priority, line)))
    plan = SimpleNamespace(audit_file=str(tmp_path), audit_syslog=False)
    audit.write(plan, {"user": "alice", "event": "session-end"})  # type: ignore[arg-type]
    assert len(said) == 1 and said[0][0] == syslog.LOG_ERR
    problem, _, line = said[0][1].partition("; the record: ")
    assert problem == f"cannot write the audit file {tmp_path} (Is a directory)"
    assert line.endswith('"user":"alice","event":"session-end"}')
