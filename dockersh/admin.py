"""Root-only admin verbs."""

from __future__ import annotations

import sys

import tomli_w

from dockersh import config, identity, pipeline
from dockersh.errors import DockershError


def run(verb: tuple[str, ...], config_path: str) -> int:
    name, args = verb[0], list(verb[1:])
    if name == "config":
        return config_verb(args, config_path)
    raise DockershError(f"{name}: not implemented yet", status=2)


def config_verb(args: list[str], config_path: str) -> int:
    if args == ["check"]:
        data = pipeline.read_global(config_path)
        base, groups, users = config.validate_global(data, config_path)
        layers = [base, *groups.values(), *users.values()]
        for layer in [base, *[base | g for g in groups.values()],
                      *[base | u for u in users.values()]]:
            config.check_dangers(config.build(config.merge([layer])), config_path)
        warnings = config.dangers(config.build(config.merge(layers)))
        for warning in warnings:
            print(f"dockersh: warning: {warning} gives sessions root on the host "
                  "(allowed by [security] dangerously_allow_host_access)", file=sys.stderr)
        print(f"{config_path}: ok")
        return 0
    if len(args) == 2 and args[0] == "show":
        user = identity.by_name(args[1])
        cfg, warnings = pipeline.effective(user, config_path)
        for warning in warnings:
            print(f"dockersh: {warning}", file=sys.stderr)
        sys.stdout.write(tomli_w.dumps(config.to_toml_data(cfg)))
        return 0
    raise DockershError("usage: dockersh config check | dockersh config show USER", status=2)
