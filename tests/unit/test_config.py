"""Config layering and validation: the precedence contract and one-line errors."""

import tomllib
from pathlib import Path

import pytest

from dockersh.config import schema
from dockersh.config.schema import Config, ConfigError, Mount

WHERE = "/etc/dockersh/dockersh.toml"


def resolve(
    text: str, user: str = "alice", groups: tuple[str, ...] = (), user_text: str | None = None
) -> Config:
    data = schema.parse_toml(text, WHERE)
    layers, policy = schema.global_layers(data, WHERE, user, groups)
    mine = (
        {}
        if user_text is None
        else schema.validate_user_file(
            schema.parse_toml(user_text, "~/.dockersh.toml"), "~/.dockersh.toml", policy
        )
    )
    cfg = schema.build(schema.merge([*layers, mine]))
    schema.check_dangers(cfg, WHERE)
    return cfg


def test_defaults() -> None:
    cfg = resolve("")
    assert cfg == Config()
    assert cfg.container.image == "dockersh-session:latest"
    assert cfg.container.name == "dockersh-{user}"
    assert cfg.session.env_pass == ("TERM", "LANG", "LC_*", "TZ", "COLORTERM")


def test_precedence_global_groups_in_file_order_users_then_own_file() -> None:
    text = """
    [container]
    memory = "1g"
    cpus = 2
    hostname = "global"
    [groups.staff.container]
    memory = "2g"
    hostname = "staff"
    [groups.admins.container]
    memory = "3g"
    [users.alice.container]
    cpus = 4
    env = { A = "1", B = "2" }
    [user_config]
    allow = ["container.hostname", "container.env"]
    """
    cfg = resolve(
        text,
        groups=("admins", "staff"),
        user_text='[container]\nhostname = "mine"\nenv = { B = "3" }\n',
    )
    assert cfg.container.memory == "3g"  # admins is written after staff: it wins
    assert cfg.container.cpus == 4.0
    assert cfg.container.hostname == "mine"
    assert cfg.container.env == (("A", "1"), ("B", "3"))  # env tables merge by name
    assert resolve(text, user="bob").container.memory == "1g"


def test_user_file_keys_need_the_admins_allow() -> None:
    with pytest.raises(ConfigError, match=r"~/.dockersh.toml: \[container\] shell: not allowed"):
        resolve("", user_text='[container]\nshell = "/bin/zsh"\n')


def test_user_file_images_only_by_alias() -> None:
    text = """
    [user_config]
    allow = ["container.image"]
    images = { py = "python:3.12-slim" }
    """
    assert resolve(text, user_text='[container]\nimage = "py"\n').container.image == (
        "python:3.12-slim"
    )
    with pytest.raises(ConfigError, match="unknown image alias"):
        resolve(text, user_text='[container]\nimage = "alpine:latest"\n')


def test_privileges_can_never_be_given_to_user_files() -> None:
    with pytest.raises(ConfigError, match=r"\[user_config\] allow: 'container.cap_add' cannot"):
        resolve('[user_config]\nallow = ["container.cap_add"]\n')


def test_recording_is_set_by_the_admin_per_host_group_or_user_never_by_the_user() -> None:
    text = """
[audit]
record_input = true
[groups.audited.audit]
record = true
max_size = "1m"
[users.bob.audit]
record = false
"""
    assert not resolve(text).audit.record
    audited = resolve(text, groups=("audited",)).audit
    assert (audited.record, audited.record_input, audited.max_size) == (True, True, "1m")
    assert not resolve(text, user="bob", groups=("audited",)).audit.record
    # Where records and recordings go stays the host's.
    with pytest.raises(ConfigError, match=r"\[users.bob.audit\] sessions_dir: only record"):
        resolve('[users.bob.audit]\nsessions_dir = "/home/bob"\n')
    # A user cannot turn their own recording off, whatever the admin allows them.
    with pytest.raises(ConfigError, match="audit: not allowed in your file"):
        resolve(text, groups=("audited",), user_text="[audit]\nrecord = false\n")
    with pytest.raises(ConfigError, match=r"'audit\.record' cannot be given to users"):
        resolve('[user_config]\nallow = ["audit.record"]\n')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[container]\nmemroy = "1g"\n', r"\[container\] memroy: unknown key"),
        ('[container]\nmemory = "4x"\n', r"\[container\] memory: bad size '4x'"),
        ("[container]\ncpus = true\n", r"\[container\] cpus: must be a positive number"),
        ('[session]\nidle_timeout = "soon"\n', r"idle_timeout: bad duration"),
        ('[session]\nexec = "ssh"\n', r"exec: must be one of docker, nsenter"),
        ('[container]\ncap_add = ["FLY"]\n', r"cap_add: unknown capability FLY"),
        ('[container]\nmounts = [{ source = "rel", target = "/x" }]\n', "absolute source"),
        ('[users.bob.docker]\nhost = "x"\n', r"only container, session and audit tables"),
        ("[nope]\n", "nope: unknown table"),
        ("[container\n", r"not valid TOML: .*line 1"),
    ],
)
def test_errors_name_the_file_and_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        resolve(text)
    assert err.value.message.startswith(WHERE + ": ")
    assert "\n" not in err.value.message


@pytest.mark.parametrize(
    "text",
    [
        "[container]\nprivileged = true\n",
        '[container]\nnetwork = "host"\n',
        '[container]\npid = "host"\n',
        '[container]\ncap_add = ["SYS_ADMIN"]\n',
        '[container]\ndevices = ["/dev/sda"]\n',
        '[container]\nmounts = [{ source = "/var/run/docker.sock", target = "/d.sock" }]\n',
        '[container]\nmounts = [{ source = "/", target = "/host" }]\n',
    ],
)
def test_root_equivalent_settings_need_the_loud_switch(text: str) -> None:
    with pytest.raises(ConfigError, match="dangerously_allow_host_access"):
        resolve(text)
    resolve(text + "[security]\ndangerously_allow_host_access = true\n")


def test_safe_capabilities_and_mounts_are_allowed() -> None:
    cfg = resolve(
        '[container]\ncap_add = ["cap_net_bind_service"]\n'
        'mounts = [{ source = "/srv/data", target = "/data" }]\n'
    )
    assert cfg.container.cap_add == ("NET_BIND_SERVICE",)
    assert cfg.container.mounts == (Mount("/srv/data", "/data", True),)


def test_sample_config_documents_every_key_with_its_default() -> None:
    """etc/dockersh.toml is the documentation: uncommenting every key must give the defaults."""
    sample = Path(__file__).parents[2] / "etc" / "dockersh.toml"
    text = sample.read_text().split("# Overrides for members")[0]
    keys = [
        line.lstrip("#").split("   #")[0]
        for line in text.splitlines()
        if line.startswith("[") or (line.startswith("#") and line[1:2].isalpha() and " = " in line)
    ]
    data = tomllib.loads("\n".join(keys))
    for section in schema.SECTIONS:
        assert set(data[section]) == set(schema.fields_of(section)), section
    assert schema.build(schema.merge([schema.validate_global(data, "sample")[0]])) == Config()
