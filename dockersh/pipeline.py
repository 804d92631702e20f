"""The full, typed path from config files and a user to a plan (runs when the cache misses)."""

from __future__ import annotations

import os

from dockersh import config, plan, plancache, userfile
from dockersh.config import Config, ConfigError
from dockersh.identity import User


def read_global(path: str) -> dict[str, object]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read it ({exc})") from None
    return config.parse_toml(text, path)


def user_file_path(user: User) -> str:
    return os.path.join(user.home, config.USER_FILE)


def user_layer(user: User, policy: config.UserConfigPolicy) -> tuple[config.Raw, list[str]]:
    """The user's own layer, or nothing and one warning: a broken user file never locks its
    owner out (they could not log in to fix it); the admin's config still applies."""
    path = user_file_path(user)
    try:
        text = userfile.read(path, user.uid)
        if text is None:
            return {}, []
        return config.validate_user_file(config.parse_toml(text, path), path, policy), []
    except userfile.Refused as exc:
        return {}, [f"{path}: ignored: {exc}"]
    except ConfigError as exc:
        return {}, [f"{exc.message}; the file is ignored"]


def effective(user: User, config_path: str) -> tuple[Config, list[str]]:
    """The config that applies to ``user``, and warnings about their own file."""
    data = read_global(config_path)
    layers, policy = config.global_layers(data, config_path, user.name, user.group_names)
    mine, warnings = user_layer(user, policy)
    cfg = config.build(config.merge([*layers, mine]))
    config.check_dangers(cfg, config_path)
    return cfg, warnings


def full_plan(user: User, config_path: str) -> tuple[Config, plan.Plan]:
    """Compute the plan and refresh the cache (warnings travel in the plan: said every login)."""
    cache_key = plancache.key(user, config_path, user_file_path(user))
    cfg, warnings = effective(user, config_path)
    result = plan.make(cfg, user, os.uname().nodename)
    result.session["warnings"] = warnings
    plancache.store(user, cache_key, result.session)
    return cfg, result
