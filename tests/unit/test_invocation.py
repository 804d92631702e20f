"""How dockersh reads its arguments: options stop at -c; the rest is data for the shell."""

import pytest

from dockersh.errors import DockershError
from dockersh.login.invocation import Invocation, parse


def test_login_shell_without_arguments_is_interactive() -> None:
    assert parse(["-dockersh"], {}) == Invocation()


def test_dash_c_takes_one_string_and_never_reads_it_as_options() -> None:
    assert parse(["dockersh", "-c", "--user root"], {}) == Invocation(command="--user root")
    assert parse(["dockersh", "-c", "ls", "--config", "/x"], {}) == Invocation(
        command="ls", args=("--config", "/x")
    )


def test_forced_command_uses_ssh_original_command() -> None:
    env = {"SSH_ORIGINAL_COMMAND": "rsync --server ."}
    assert parse(["dockersh"], env) == Invocation(command="rsync --server .", forced=True)
    assert parse(["dockersh", "-c", "/usr/local/bin/dockersh"], env) == Invocation(
        command="rsync --server .", forced=True
    )


def test_forced_command_without_client_command_is_interactive() -> None:
    assert parse(["dockersh", "-c", "/usr/local/bin/dockersh"], {}) == Invocation(forced=True)


def test_client_command_is_not_taken_from_the_environment_when_a_command_is_given() -> None:
    env = {"SSH_ORIGINAL_COMMAND": "evil"}
    assert parse(["dockersh", "-c", "id"], env) == Invocation(command="id")


def test_user_and_config_options() -> None:
    assert parse(["dockersh", "--user", "bob", "-c", "id"], {}) == Invocation(
        user="bob", command="id"
    )
    assert parse(["dockersh", "--user=bob", "--config=/c.toml"], {}) == Invocation(
        user="bob", config_path="/c.toml"
    )


def test_admin_verbs_and_their_privileged_options() -> None:
    inv = parse(["dockersh", "--debug", "config", "show", "bob"], {})
    assert inv == Invocation(verb=("config", "show", "bob"), debug=True)
    assert inv.privileged_options == ["config", "--debug"]
    assert parse(["dockersh", "-c", "ls"], {}).privileged_options == []


@pytest.mark.parametrize(
    "argv", [["dockersh", "-c"], ["dockersh", "--user"], ["dockersh", "--bogus"], ["dockersh", "x"]]
)
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(DockershError) as err:
        parse(argv, {})
    assert err.value.status == 2


def test_the_privileged_verbs_are_exactly_the_admin_verbs() -> None:
    """A verb the parser does not know is refused as an unknown option, even for root; one it
    knows that admin does not dispatch fails as an unknown verb."""
    from dockersh.admin.verbs import VERBS as DISPATCHED
    from dockersh.login.invocation import VERBS

    assert set(VERBS) == set(DISPATCHED) | {"config"}
