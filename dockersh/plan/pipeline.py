"""The full, typed path from config files and a user to a plan (runs when the cache misses)."""

from __future__ import annotations

import os

from dockersh import __version__, statefiles
from dockersh.config import schema, userfile
from dockersh.config.schema import Config, ConfigError
from dockersh.login.identity import User
from dockersh.paths import PARSED_CONFIG, USER_FILE
from dockersh.plan import cache, planner

#: The global file parsed, by its identity: ls and gc judge hundreds of containers with one
#: parse (the file does not change under them; when it does, its identity does too).
_parsed: dict[tuple[object, ...], dict[str, object]] = {}


def read_global(path: str) -> dict[str, object]:
    """The global file's TOML. Parsed once per identity of the file and kept by root in
    PARSED_CONFIG, so that a user's first login (a plan cache miss) skips tomllib and the
    typing and re it imports (~10 ms of its CPU)."""
    try:
        st = os.stat(path)
        key = (__version__, path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
               st.st_ctime_ns)
        if key in _parsed:
            return _parsed[key]
        saved = statefiles.read_marshal(PARSED_CONFIG)
        if isinstance(saved, tuple) and len(saved) == 2 and saved[0] == key \
                and isinstance(saved[1], dict):
            _parsed[key] = saved[1]
            return saved[1]
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read it ({exc})") from None
    _parsed[key] = data = schema.parse_toml(text, path)
    if os.geteuid() == 0:
        try:
            statefiles.write_marshal(PARSED_CONFIG, (key, data))
        except (OSError, ValueError):  # no /run, or a TOML date (marshal has no datetime)
            pass
    return data


def global_config(config_path: str) -> Config:
    """The global file's own tables (no group or user override), validated."""
    base, _, _ = schema.validate_global(read_global(config_path), config_path)
    return schema.build(schema.merge([base]))


def user_file_path(user: User) -> str:
    return os.path.join(user.home, USER_FILE)


def user_layer(user: User, policy: schema.UserConfigPolicy) -> tuple[schema.Raw, list[str]]:
    """The user's own layer, or nothing and one warning: a broken user file never locks its
    owner out (they could not log in to fix it); the admin's config still applies."""
    path = user_file_path(user)
    try:
        text = userfile.read(path, user.uid)
        if text is None:
            return {}, []
        return schema.validate_user_file(schema.parse_toml(text, path), path, policy), []
    except userfile.Refused as exc:
        return {}, [f"{path}: ignored: {exc}"]
    except ConfigError as exc:
        return {}, [f"{exc.message}; the file is ignored"]


def effective(user: User, config_path: str) -> tuple[Config, list[str]]:
    """The config that applies to ``user``, and warnings about their own file."""
    data = read_global(config_path)
    layers, policy = schema.global_layers(data, config_path, user.name, user.group_names)
    mine, warnings = user_layer(user, policy)
    cfg = schema.build(schema.merge([*layers, mine]))
    schema.check_dangers(cfg, config_path)
    return cfg, warnings


def full_plan(user: User, config_path: str) -> tuple[Config, planner.Plan]:
    """Compute the plan and refresh the cache (warnings travel in the plan: said every login)."""
    cache_key = cache.key(user, config_path, user_file_path(user))
    cfg, warnings = effective(user, config_path)
    result = planner.make(cfg, user, os.uname().nodename)
    result.session.warnings = warnings
    cache.store(user, cache_key, result.session)
    return cfg, result
