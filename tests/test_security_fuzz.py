"""Property-based attacks (hypothesis), bounded so that the whole file runs in a few seconds.

- Config: whatever TOML-ish text or TOML data an admin or a user writes, loading, validating,
  layering and planning either work or raise ConfigError (one line naming the file): never
  another exception, which would lock every user out with an "internal error".
- Invocation: text after ``-c`` is never read as an option, whatever it holds and whatever
  came before it.
- Names: ``naming.escape`` is injective, and container names are valid Docker names that
  never collide for two different user names.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dockersh.config import schema
from dockersh.config.schema import ConfigError
from dockersh.errors import DockershError
from dockersh.login import identity
from dockersh.login.invocation import parse
from dockersh.plan import naming, planner

BOUNDED = settings(max_examples=200, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])
#: The config properties build whole documents: fewer, bigger examples.
DOCUMENT_BOUND = settings(BOUNDED, max_examples=120)
WHERE = "/etc/dockersh/dockersh.toml"
USER = identity.User("alice", 1000, 1000, "/home/alice", "/bin/bash", "Alice",
                     (("alice", 1000), ("staff", 50)))

# --- values and documents ------------------------------------------------------------------

SIZES = st.sampled_from(["512m", "4g", "0", "-1", "1.e999", "1e400", "nan", "inf", "1.5g",
                         "0.0000001k", "9" * 400, "1kib", "b", "", " 2 g ", "1..2m", "0x10",
                         "99999999999999999999999t", "30s", "12h", "7d", "1.5w", "-0"])
SCALARS = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    SIZES,
    st.dates(),
    st.times(),
    st.datetimes(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def known_keys(section: str) -> list[str]:
    return list(schema.fields_of(section))


SECTION_NAMES = [*schema.SECTIONS]
KEYS = st.sampled_from(sorted({k for s in SECTION_NAMES for k in known_keys(s)} |
                              {"source", "target", "read_only", "security_opt", "x"}))


def section_table() -> st.SearchStrategy[dict[str, Any]]:
    mounts = st.lists(st.fixed_dictionaries(
        {"source": st.sampled_from(["/srv", "relative", "/var/run/../run", "//run", "/"]),
         "target": st.sampled_from(["/data", "x", "/"])},
        optional={"read_only": st.one_of(st.booleans(), st.integers())}), max_size=3)
    value = st.one_of(VALUES, SIZES, mounts,
                      st.lists(st.sampled_from(["SYS_ADMIN", "chown", "CAP_KILL", "NOPE", ""]),
                               max_size=3),
                      st.sampled_from(["docker", "nsenter", "host", "private", "never",
                                       "always", "if-missing", "unix:///x", "tcp://h:2375"]))
    return st.dictionaries(KEYS, value, max_size=6)


DOCUMENTS = st.dictionaries(
    st.one_of(st.sampled_from([*SECTION_NAMES, "groups", "users"]), st.text(max_size=6)),
    st.one_of(section_table(),
              st.dictionaries(st.sampled_from(["alice", "staff", "x"]),
                              st.dictionaries(st.sampled_from(["container", "session", "docker"]),
                                              section_table(), max_size=2), max_size=2),
              VALUES),
    max_size=5,
)


def load(data: dict[str, Any], user_data: dict[str, Any] | None = None) -> None:
    """Everything a login does with config data, up to the plan; ConfigError is the only way
    out besides success."""
    layers, policy = schema.global_layers(data, WHERE, USER.name, USER.group_names)
    mine = ({} if user_data is None else
            schema.validate_user_file(user_data, "/home/alice/.dockersh.toml", policy))
    cfg = schema.build(schema.merge([*layers, mine]))
    schema.check_dangers(cfg, WHERE)
    planner.make(cfg, USER, "host")
    schema.to_toml_data(cfg)


def toml_text(data: dict[str, Any]) -> str | None:
    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError):
        return None


@DOCUMENT_BOUND
@given(DOCUMENTS)
@example({"container": {"memory": "1.e999"}})
@example({"container": {"cpus": float("nan")}})
@example({"container": {"cpus": float("inf")}})
@example({"docker": {"lock_timeout": "1.e999"}})
@example({"session": {"idle_timeout": "1.e400"}})
def test_config_data_only_ever_raises_config_error(data: dict[str, Any]) -> None:
    try:
        load(data)
    except ConfigError:
        pass


@DOCUMENT_BOUND
@given(DOCUMENTS, st.dictionaries(st.sampled_from(["container", "session", "docker", "x"]),
                                  st.one_of(section_table(), VALUES), max_size=3))
def test_user_file_data_only_ever_raises_config_error(admin: dict[str, Any],
                                                      mine: dict[str, Any]) -> None:
    admin = {**admin, "user_config": {"allow": sorted(schema.USER_SETTABLE),
                                      "images": {"py": "python:3"}}}
    try:
        load(admin, mine)
    except ConfigError:
        pass


TOMLISH = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="[]{}=\"'.,#\n abc0123456789-_:+eE\\", max_size=300),
    DOCUMENTS.map(toml_text).filter(lambda t: t is not None),
)


@BOUNDED
@given(TOMLISH)
@example("x = " + "1" * 5000)
@example("a = " + "[" * 5000)
@example("[container]\nmemory = \"1.e999\"\n")
@example("[container]\ncpus = nan\n")
@example("[container]\ncpus = inf\n")
@example("x = 1979-02-30")
def test_toml_text_only_ever_raises_config_error(text: Any) -> None:
    try:
        load(schema.parse_toml(text, WHERE))
    except ConfigError as exc:
        assert exc.message.startswith(WHERE)
        assert "\n" not in exc.message.removeprefix(WHERE).split(": not valid TOML")[0]


# --- invocation ------------------------------------------------------------------------------

OPTION_PREFIXES = st.lists(st.one_of(
    st.just(["-l"]), st.just(["--login"]), st.just(["--debug"]),
    st.tuples(st.just("--user"), st.text(min_size=1, max_size=8)).map(list),
    st.text(min_size=1, max_size=8).map(lambda v: [f"--user={v}"]),
    st.tuples(st.just("--config"), st.text(min_size=1, max_size=8)).map(list),
), max_size=3).map(lambda parts: [a for p in parts for a in p])
ARG_TEXT = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["--user", "--user=root", "--config", "--config=/x", "--debug", "-c", "-l",
                     "--help", "--version", "config", "check", "rm", "root", "", "-",
                     "/usr/local/bin/dockersh"]),
)


@BOUNDED
@given(st.text(max_size=20), OPTION_PREFIXES, ARG_TEXT, st.lists(ARG_TEXT, max_size=5),
       st.one_of(st.none(), ARG_TEXT))
def test_text_after_dash_c_is_never_an_option(argv0: str, prefix: list[str], command: str,
                                               rest: list[str], original: str | None) -> None:
    env = {} if original is None else {"SSH_ORIGINAL_COMMAND": original}
    try:
        baseline = parse([argv0, *prefix, "-c", "true"], env)
    except DockershError:
        return  # the prefix itself is refused: so is it with any command
    inv = parse([argv0, *prefix, "-c", command, *rest], env)
    # What the options said is exactly what the prefix said: the command changes nothing.
    for field in ("user", "config_path", "debug", "verb", "help", "version"):
        assert getattr(inv, field) == getattr(baseline, field), field
    if inv.forced:
        assert command.strip() in ("dockersh", "/usr/local/bin/dockersh") and not rest
        assert inv.command == original
    else:
        assert (inv.command, inv.args) == (command, tuple(rest))


@BOUNDED
@given(st.text(max_size=20), st.lists(ARG_TEXT, max_size=6))
def test_parse_fails_only_with_a_dockersh_error(argv0: str, args: list[str]) -> None:
    try:
        parse([argv0, *args], {})
    except DockershError as exc:
        assert "\n" not in exc.message


# --- names -----------------------------------------------------------------------------------

DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
#: What a user name can look like: POSIX portable names, upper case, and anything NSS serves.
USER_NAMES = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
            min_size=1, max_size=32),
    st.text(min_size=1, max_size=40),
)


@BOUNDED
@given(USER_NAMES, USER_NAMES)
def test_escape_is_injective(a: str, b: str) -> None:
    if a != b:
        assert naming.escape(a) != naming.escape(b)


@BOUNDED
@given(USER_NAMES, st.sampled_from(["dockersh-{user}", "{user}", "u-{uid}-{user}",
                                    "{user}.box", "_{user}"]))
def test_container_names_are_valid_docker_names(user: str, template: str) -> None:
    name = naming.container_name(template, {"user": user, "uid": "1000"})
    assert DOCKER_NAME.fullmatch(name), name
    assert len(name) <= naming.MAX_LENGTH


# A user whose escaped name is exactly the shortened form of another user's: with a plain
# "-" + hash suffix, "aBCDEFGHIJKLMNO-41588482c9" got the container of "aBCDEFGHIJKLMNOPQRST".
COLLIDING = ("aBCDEFGHIJKLMNOPQRST", "aBCDEFGHIJKLMNO-41588482c9")


def unescape_capped(user: str) -> str | None:
    """The user name whose uncapped container name equals the capped name of ``user``."""
    name = naming.container_name("dockersh-{user}", {"user": user})
    tail = name.removeprefix("dockersh-")
    if not re.fullmatch(r"(?:[a-z0-9.-]|_[0-9a-f]{2})*", tail):
        return None
    try:
        return re.sub(rb"_([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                      tail.encode()).decode()
    except UnicodeDecodeError:
        return None


@BOUNDED
@given(USER_NAMES)
@example(COLLIDING[0])
def test_no_user_name_gets_the_shortened_name_of_another(user: str) -> None:
    twin = unescape_capped(user)
    if twin is not None and twin != user:
        assert naming.container_name("dockersh-{user}", {"user": twin}) != \
            naming.container_name("dockersh-{user}", {"user": user})


@BOUNDED
@given(USER_NAMES, USER_NAMES)
@example(*COLLIDING)
def test_container_names_never_collide(a: str, b: str) -> None:
    if a != b:
        assert naming.container_name("dockersh-{user}", {"user": a}) != \
            naming.container_name("dockersh-{user}", {"user": b})


def test_dates_and_times_in_toml_are_refused_not_crashing() -> None:
    data = {"container": {"memory": datetime.date(2020, 1, 1)}}
    with pytest.raises(ConfigError, match="must be a string"):
        load(data)


# --- env_pass globs (a user's own file may set them) -----------------------------------------

GLOB_TEXT = st.text(alphabet="ab_*?ZC", max_size=12)


@BOUNDED
@given(GLOB_TEXT, GLOB_TEXT)
def test_env_pass_globs_match_like_fnmatch(pattern: str, name: str) -> None:
    import fnmatch

    from dockersh.login.handoff import glob_match

    assert glob_match(pattern, name) == fnmatch.fnmatchcase(name, pattern)


def test_env_pass_glob_of_a_user_cannot_spin_a_root_process() -> None:
    """The recursive matcher took minutes for this (as root, once per login)."""
    import time

    from dockersh.login.handoff import glob_match

    began = time.monotonic()
    for name in ("SSH_ORIGINAL_COMMAND", "a" * 200, "LC_" + "A" * 100):
        assert not glob_match("*a" * 40 + "*X", name)
        assert not glob_match("*" * 5000 + "X", name)  # no recursion limit either
    assert time.monotonic() - began < 1
