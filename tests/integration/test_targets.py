"""Targets: existing containers that dockersh did not make, entered as the admin says. Users
come in through the real sshd and the installed dockersh, in both exec modes; root's --target
and the config check run dockersh as root with its own config (support/ops.py)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import engine
from support.cmd import run
from support.images import BUSYBOX_IMAGE
from support.ops import Dockersh, inspect, state
from support.sshd import SshdFactory, SshServer
from support.users import DOCKERSH_SHELL, LinuxUser, UserFactory

pytest_plugins = ["support.ops"]
pytestmark = pytest.mark.integration

Foreign = Callable[..., str]
Configure = Callable[..., None]


@pytest.fixture
def foreign(test_image: str) -> Iterator[Foreign]:
    """foreign(label=...) starts a container as an application would (plain docker run, no
    dockersh labels); its name. All are removed afterwards."""
    made: list[str] = []

    def start(*labels: str) -> str:
        name = f"app-{secrets.token_hex(4)}"
        argv = ["docker", "run", "-d", "--name", name]
        for label in labels:
            argv += ["--label", label]
        run([*argv, BUSYBOX_IMAGE, "sleep", "infinity"], timeout=60)
        made.append(name)
        return name

    yield start
    if made:
        run(["docker", "rm", "-f", *made], check=False, timeout=60)


@pytest.fixture
def configure(dockersh_config: Callable[..., Path], test_image: str,
              tmp_path: Path) -> Configure:
    """configure(TOML, hostname=...): the installed dockersh's config: the test image, an audit
    file of the test's own (tmp_path/audit.jsonl), then the text."""

    def write(text: str, hostname: str = "own-{user}") -> None:
        dockersh_config(f'{engine.CONFIG}[container]\nimage = "{test_image}"\npull = "never"\n'
                        f'shell = "/bin/sh"\nhostname = "{hostname}"\n\n'
                        f'[audit]\nfile = "{tmp_path / "audit.jsonl"}"\n\n{text}')

    return write


def hostname_of(name: str) -> str:
    found = inspect(name)
    assert found is not None
    return str(found["Config"]["Hostname"])


def targets(table: str, **users: str) -> str:
    """[targets.T] TOML plus ``[users.NAME] target = T`` for each user given."""
    return table + "".join(f'\n[users.{u}]\ntarget = "{t}"\n' for u, t in users.items())


def own_containers(user: LinuxUser) -> list[str]:
    return run(["docker", "ps", "-aq", "--filter", f"label=dockersh.user={user.name}"]
               ).stdout.split()


def ssh_text(server: SshServer, user: LinuxUser, cmd: str) -> tuple[int, str, str]:
    proc = server.ssh(user, cmd)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


@pytest.mark.parametrize("mode", ["docker", "nsenter"])
def test_a_mapped_user_lands_in_the_target_as_themselves(
    mode: str, configure: Configure, sshd: SshdFactory, make_user: UserFactory,
    foreign: Foreign, tmp_path: Path
) -> None:
    app = foreign()
    user, other = make_user(), make_user()
    configure(targets(f'[targets.web]\ncontainer = "{app}"\nusers = ["{user.name}", '
                      f'"{other.name}"]\nexec = "{mode}"\nenv = {{ APP = "web-{{user}}" }}\n'
                      f'[targets.as]\ncontainer = "{app}"\nusers = ["{other.name}"]\n'
                      f'exec = "{mode}"\nuser = "4321:4322"\n',
                      **{user.name: "web", other.name: "as"}))
    server = sshd()
    code, out, err = ssh_text(server, user, 'id -u; id -g; hostname; echo "$APP $HOME"; pwd; '
                                            "echo err >&2; exit 3")
    assert (code, out, err) == (3, f"{user.uid}\n{user.gid}\n{hostname_of(app)}\n"
                                   f"web-{user.name} /\n/\n", "err\n")
    # The admin's user = "UID:GID" is who the other one is inside.
    assert ssh_text(server, other, "id -u; id -g") == (0, "4321\n4322\n", "")
    # Root tries the other one in web, with the installed dockersh.
    proc = run([DOCKERSH_SHELL, "--user", other.name, "--target", "web", "-c",
                "id -u; echo $APP; exit 4"], check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (4, f"{other.uid}\nweb-{other.name}\n",
                                                           "")
    # Nothing of the user's own was made, and the record names the target.
    assert own_containers(user) == []
    records = [r for r in map(json.loads, (tmp_path / "audit.jsonl").read_text().splitlines())
               if r["user"] == user.name]
    assert [r["event"] for r in records] == ["session-start", "session-end"]
    assert {r["target"] for r in records} == {"web"}
    assert (records[-1]["exit"], records[-1]["mode"]) == (3, mode)


def test_a_label_target_with_user_picks_each_users_own(
    configure: Configure, sshd: SshdFactory, make_user: UserFactory, foreign: Foreign
) -> None:
    alice, bob = make_user(), make_user()
    apps = {u.name: foreign(f"org.example.owner={u.name}") for u in (alice, bob)}
    configure(targets('[targets.mine]\nlabel = "org.example.owner={user}"\n'
                      f'users = ["{alice.name}", "{bob.name}"]\n',
                      **{alice.name: "mine", bob.name: "mine"}))
    for user in (alice, bob):
        assert ssh_text(sshd(), user, "hostname") == (0, hostname_of(apps[user.name]) + "\n", "")


def test_zero_or_two_matches_and_outsiders_are_refused_in_one_line(
    configure: Configure, sshd: SshdFactory, make_user: UserFactory, foreign: Foreign
) -> None:
    user, outsider = make_user(), make_user()
    two = [foreign("org.example.role=db") for _ in range(2)]
    stopped = foreign()
    run(["docker", "stop", "-t", "0", stopped], timeout=60)
    # The engine resolves an id prefix too; a target names a container exactly, or nothing.
    prefix = run(["docker", "inspect", "-f", "{{.Id}}", two[0]]).stdout[:12]
    tables = (f'[targets.prefix]\ncontainer = "{prefix}"\nusers = ["{user.name}"]\n'
              f'[targets.stopped]\ncontainer = "{stopped}"\nusers = ["{user.name}"]\n'
              f'[targets.none]\nlabel = "org.example.role=nothing"\nusers = ["{user.name}"]\n'
              f'[targets.two]\nlabel = "org.example.role=db"\nusers = ["{user.name}"]\n'
              f'[targets.closed]\ncontainer = "{two[0]}"\nusers = ["{user.name}"]\n')
    cases = {
        (user, "none"): "dockersh: target none: 0 running containers have the label "
                        "org.example.role=nothing (none); exactly one must\n",
        (user, "two"): f"dockersh: target two: 2 running containers have the label "
                       f"org.example.role=db ({', '.join(sorted(two))}); exactly one must\n",
        (outsider, "closed"): f"dockersh: target closed: {outsider.name} is not among its users "
                              "or groups; ask the administrator\n",
        (user, "prefix"): f"dockersh: target prefix: container {prefix} is not running\n",
        (user, "stopped"): f"dockersh: target stopped: container {stopped} is not running\n",
    }
    for (who, target), line in cases.items():
        configure(targets(tables, **{who.name: target}))
        assert ssh_text(sshd(), who, "echo never") == (125, "", line), target
    assert own_containers(user) == own_containers(outsider) == []
    assert not state(stopped)["Running"]  # dockersh never starts a target


def test_roots_target_option_and_a_root_target(
    dsh: Dockersh, make_user: UserFactory, foreign: Foreign
) -> None:
    app = foreign()
    user = make_user()
    dsh.write(f'[targets.ops]\ncontainer = "{app}"\nusers = ["{user.name}"]\nuser = "root"\n'
              f'[targets.plain]\ncontainer = "{app}"\nusers = ["{user.name}"]\n')
    assert dsh("--user", user.name, "--target", "ops", "-c", "id -u").stdout == "0\n"
    proc = dsh("--user", user.name, "--target", "plain", "-c", "id -u; hostname; exit 2")
    assert (proc.returncode, proc.stdout) == (2, f"{user.uid}\n{hostname_of(app)}\n")
    # Without the mapping, the same user's login goes to their own container.
    assert dsh.login(user, "hostname").stdout.strip() != hostname_of(app)
    proc = dsh("--user", user.name, "--target", "missing", "-c", "true")
    assert (proc.returncode, proc.stderr) == (125, f"dockersh: there is no [targets.missing] in "
                                                   f"{dsh.config}\n")


def facts(app: str) -> tuple[Any, ...]:
    found = inspect(app)
    assert found is not None
    return (found["Id"], found["State"]["Status"], found["State"]["StartedAt"],
            found["RestartCount"])


def test_the_target_is_never_touched_and_ls_shows_who_is_in_it(
    configure: Configure, sshd: SshdFactory, make_user: UserFactory, foreign: Foreign
) -> None:
    app = foreign()
    user = make_user()
    server = sshd()
    configure("")  # first the user's own container, unmapped
    assert ssh_text(server, user, "hostname") == (0, f"own-{user.name}\n", "")
    [own] = own_containers(user)
    before = facts(app)
    mapped = targets(f'[targets.web]\ncontainer = "{app}"\nusers = ["{user.name}"]\n',
                     **{user.name: "web"})
    configure(mapped)
    session = server.spawn(user, "echo up; cat >/dev/null; exit 6")
    try:
        assert session.stdout is not None and session.stdout.readline() == b"up\n"
        listing = run([DOCKERSH_SHELL, "ls"]).stdout
        assert ["web", user.name, "1"] in [line.split() for line in listing.splitlines()]
    finally:
        assert session.communicate(timeout=60)[0] == b"" and session.returncode == 6
    # A config change that recreates the user's own container at their next login: they land
    # in the target, and neither container is recreated.
    configure(mapped, hostname="changed-{user}")
    assert ssh_text(server, user, "hostname") == (0, hostname_of(app) + "\n", "")
    assert own_containers(user) == [own]
    for verb in (("gc", "--idle", "0"), ("stop", user.name), ("rm", user.name), ("gc",)):
        proc = run([DOCKERSH_SHELL, *verb], check=False)
        assert proc.returncode == 0, proc.stderr
        assert app not in proc.stdout + proc.stderr
    assert own_containers(user) == []
    assert facts(app) == before


def test_a_target_needs_exactly_one_way_to_name_it(dsh: Dockersh) -> None:
    dsh.write('[targets.x]\ncontainer = "a"\nlabel = "b=c"\n')
    proc = dsh("config", "check")
    assert proc.returncode == 125
    assert "[targets.x]: needs container or label (one)" in proc.stderr
    dsh.write('[users.nobody]\ntarget = "missing"\n')
    assert "there is no [targets] table of that name" in dsh("config", "check").stderr


def test_a_forced_key_lands_in_its_target_and_the_others_in_the_own_container(
    configure: Configure, sshd: SshdFactory, make_user: UserFactory, foreign: Foreign,
    tmp_path: Path
) -> None:
    """An ops key of the user goes into the target (sshd's ExposeAuthInfo tells which key was
    used); the user's other key into their own container."""
    app = foreign()
    user: LinuxUser = make_user()
    ops_key = tmp_path / "ops_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ops_key])
    authorized = user.home / ".ssh" / "authorized_keys"
    authorized.write_text(authorized.read_text() + ops_key.with_suffix(".pub").read_text())
    fingerprint = run(["ssh-keygen", "-lf", ops_key]).stdout.split()[1]
    configure(f'[targets.debug]\ncontainer = "{app}"\nusers = ["{user.name}"]\n'
              f'keys = ["{fingerprint}"]\n')
    server = sshd()
    argv = server.ssh_argv(user, "hostname")
    argv[argv.index(str(user.key))] = str(ops_key)
    forced = subprocess.run(argv, capture_output=True, timeout=60, check=False,
                            stdin=subprocess.DEVNULL)
    assert (forced.returncode, forced.stdout.decode().strip()) == (0, hostname_of(app)), \
        forced.stderr
    assert ssh_text(server, user, "hostname") == (0, f"own-{user.name}\n", "")
