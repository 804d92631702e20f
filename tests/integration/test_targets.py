"""Targets: existing containers that dockersh did not make, entered as the admin says, through
the real engine in both exec modes (dockersh as root with its own config: support/ops.py), and
through the real sshd for a mapped user."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cmd import run
from support.images import BUSYBOX_IMAGE
from support.ops import Dockersh, inspect
from support.sshd import SshdFactory
from support.users import LinuxUser, UserFactory

pytest_plugins = ["support.ops"]
pytestmark = pytest.mark.integration

Foreign = Callable[..., str]


@pytest.fixture
def foreign(test_image: str) -> Iterator[Foreign]:
    """foreign(label=...) starts a container as an application would (no dockersh labels);
    its name. All are removed afterwards."""
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


def hostname_of(name: str) -> str:
    found = inspect(name)
    assert found is not None
    return str(found["Config"]["Hostname"])


def targets(table: str, **users: str) -> str:
    """[targets.T] TOML plus ``[users.NAME] target = T`` for each user given."""
    return table + "".join(f'\n[users.{u}]\ntarget = "{t}"\n' for u, t in users.items())


@pytest.mark.parametrize("mode", ["docker", "nsenter"])
def test_a_mapped_user_lands_in_the_target_as_themselves(
    mode: str, dsh: Dockersh, make_user: UserFactory, foreign: Foreign
) -> None:
    app = foreign()
    user = make_user()
    dsh.write(targets(f'[targets.web]\ncontainer = "{app}"\nusers = ["{user.name}"]\n'
                      f'exec = "{mode}"\nenv = {{ APP = "web-{{user}}" }}\n', **{user.name: "web"}))
    proc = dsh.login(user, 'id -u; id -g; hostname; echo "$APP $HOME"; pwd; echo err >&2; '
                           "exit 3")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split("\n")[:5] == [str(user.uid), str(user.gid), hostname_of(app),
                                           f"web-{user.name} /", "/"]
    assert proc.stderr == "err\n"
    # Nothing of the user's own was made, and the record names the target.
    assert user.name not in dsh.ls()
    records = dsh.audit_records(user)
    assert [r["event"] for r in records] == ["session-start", "session-end"]
    assert {r["target"] for r in records} == {"web"}
    assert records[-1]["exit"] == 3


def test_a_label_target_with_user_picks_each_users_own(
    dsh: Dockersh, make_user: UserFactory, foreign: Foreign
) -> None:
    alice, bob = make_user(), make_user()
    apps = {u.name: foreign(f"org.example.owner={u.name}") for u in (alice, bob)}
    dsh.write(targets('[targets.mine]\nlabel = "org.example.owner={user}"\n'
                      f'users = ["{alice.name}", "{bob.name}"]\n',
                      **{alice.name: "mine", bob.name: "mine"}))
    for user in (alice, bob):
        proc = dsh.login(user, "hostname")
        assert (proc.returncode, proc.stdout.strip()) == (0, hostname_of(apps[user.name]))


def test_zero_or_two_matches_and_outsiders_are_refused_in_one_line(
    dsh: Dockersh, make_user: UserFactory, foreign: Foreign
) -> None:
    user, outsider = make_user(), make_user()
    two = [foreign("org.example.role=db") for _ in range(2)]
    # The engine resolves an id prefix too; a target names a container exactly, or nothing.
    prefix = run(["docker", "inspect", "-f", "{{.Id}}", two[0]]).stdout[:12]
    dsh.write(targets(
        f'[targets.prefix]\ncontainer = "{prefix}"\nusers = ["{user.name}"]\n'
        f'[targets.none]\nlabel = "org.example.role=nothing"\nusers = ["{user.name}"]\n'
        f'[targets.two]\nlabel = "org.example.role=db"\nusers = ["{user.name}"]\n'
        f'[targets.closed]\ncontainer = "{two[0]}"\nusers = ["{user.name}"]\n'))
    cases = {
        (user, "none"): "dockersh: target none: 0 running containers have the label "
                        "org.example.role=nothing (none); exactly one must\n",
        (user, "two"): f"dockersh: target two: 2 running containers have the label "
                       f"org.example.role=db ({', '.join(sorted(two))}); exactly one must\n",
        (outsider, "closed"): f"dockersh: target closed: {outsider.name} is not among its users "
                              "or groups; ask the administrator\n",
        (user, "prefix"): f"dockersh: target prefix: container {prefix} is not running\n",
    }
    for (who, target), line in cases.items():
        proc = dsh("--user", who.name, "--target", target, "-c", "echo never")
        assert (proc.returncode, proc.stdout, proc.stderr) == (125, "", line)


def test_roots_target_option_and_a_root_target(
    dsh: Dockersh, make_user: UserFactory, foreign: Foreign
) -> None:
    app = foreign()
    user = make_user()
    dsh.write(f'[targets.ops]\ncontainer = "{app}"\nusers = ["{user.name}"]\nuser = "root"\n'
              f'[targets.plain]\ncontainer = "{app}"\nusers = ["{user.name}"]\n')
    assert dsh("--user", user.name, "--target", "ops", "-c", "id -u").stdout == "0\n"
    assert dsh("--user", user.name, "--target", "plain", "-c", "id -u").stdout == f"{user.uid}\n"
    # Without the mapping, the same user's login goes to their own container.
    assert dsh.login(user, "hostname").stdout.strip() != hostname_of(app)


def test_the_target_is_never_touched_and_ls_shows_who_is_in_it(
    dsh: Dockersh, make_user: UserFactory, foreign: Foreign
) -> None:
    app = foreign()
    user = make_user()
    dsh.write(targets(f'[targets.web]\ncontainer = "{app}"\nusers = ["{user.name}"]\n',
                      **{user.name: "web"}))
    before = inspect(app)
    assert before is not None
    session = dsh.spawn(user, "echo up; sleep 60")
    try:
        assert session.stdout is not None and session.stdout.readline() == "up\n"
        listing = dsh("ls").stdout
        assert ["web", user.name, "1"] in [line.split() for line in listing.splitlines()]
    finally:
        dsh.end(session)
    for verb in (("gc", "--idle", "0"), ("rm", user.name), ("stop", user.name)):
        dsh(*verb)
    after = inspect(app)
    assert after is not None
    assert (after["State"]["Running"], after["State"]["StartedAt"]) == \
        (True, before["State"]["StartedAt"])


def test_a_mapped_user_through_sshd(
    dockersh_config: Callable[..., Path], test_image: str, sshd: SshdFactory,
    make_user: UserFactory, foreign: Foreign
) -> None:
    app = foreign()
    user: LinuxUser = make_user()
    dockersh_config(f'[container]\nimage = "{test_image}"\npull = "never"\nshell = "/bin/sh"\n\n'
                    + targets(f'[targets.web]\ncontainer = "{app}"\nusers = ["{user.name}"]\n',
                              **{user.name: "web"}))
    proc = sshd().ssh(user, "hostname; id -u; exit 4")
    assert (proc.returncode, proc.stdout.decode().split()) == (4, [hostname_of(app),
                                                                   str(user.uid)]), proc.stderr
    labelled = run(["docker", "ps", "-aq", "--filter", f"label=dockersh.user={user.name}"])
    assert labelled.stdout == ""


def test_a_target_needs_exactly_one_way_to_name_it(dsh: Dockersh) -> None:
    dsh.write('[targets.x]\ncontainer = "a"\nlabel = "b=c"\n')
    proc = dsh("config", "check")
    assert proc.returncode == 125
    assert "[targets.x]: needs container or label (one)" in proc.stderr
    dsh.write('[users.nobody]\ntarget = "missing"\n')
    assert "there is no [targets] table of that name" in dsh("config", "check").stderr


def test_a_forced_key_lands_in_its_target_and_the_others_in_the_own_container(
    dockersh_config: Callable[..., Path], test_image: str, sshd: SshdFactory,
    make_user: UserFactory, foreign: Foreign, tmp_path: Path
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
    dockersh_config(f'[container]\nimage = "{test_image}"\npull = "never"\nshell = "/bin/sh"\n\n'
                    f'[targets.debug]\ncontainer = "{app}"\nusers = ["{user.name}"]\n'
                    f'keys = ["{fingerprint}"]\n')
    server = sshd()
    argv = server.ssh_argv(user, "hostname")
    argv[argv.index(str(user.key))] = str(ops_key)
    forced = subprocess.run(argv, capture_output=True, timeout=60, check=False,
                            stdin=subprocess.DEVNULL)
    assert (forced.returncode, forced.stdout.decode().strip()) == (0, hostname_of(app)), \
        forced.stderr
    own = server.ssh(user, "hostname")
    assert own.returncode == 0 and own.stdout.decode().strip() != hostname_of(app), own.stderr
