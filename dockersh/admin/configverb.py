"""``dockersh config check`` and ``dockersh config show USER`` (doctor checks the file too)."""

from __future__ import annotations

import sys

import tomli_w

from dockersh.config import schema
from dockersh.errors import DockershError
from dockersh.login import identity
from dockersh.plan import pipeline


def check_config(config_path: str) -> list[str]:
    """Validate the global file and every [groups]/[users] combination; the danger warnings."""
    data = pipeline.read_global(config_path)
    base, groups, users = schema.validate_global(data, config_path)
    combinations = [("", {}), *((f"[groups.{n}] ", g) for n, g in groups.items()),
                    *((f"[users.{n}] ", u) for n, u in users.items())]
    warnings: list[str] = []
    for origin, layer in combinations:
        cfg = schema.build(schema.merge([base, layer]))
        schema.check_dangers(cfg, config_path, origin)
        warnings += [f"{origin}{danger} gives sessions root on the host (allowed by "
                     "[security] dangerously_allow_host_access)" for danger in schema.dangers(cfg)]
    return list(dict.fromkeys(warnings))


def run(args: list[str], config_path: str) -> int:
    if args == ["check"]:
        for warning in check_config(config_path):
            print(f"dockersh: warning: {warning}", file=sys.stderr)
        print(f"{config_path}: ok")
        return 0
    if len(args) == 2 and args[0] == "show":
        user = identity.by_name(args[1])
        cfg, warnings = pipeline.effective(user, config_path)
        for warning in warnings:
            print(f"dockersh: {warning}", file=sys.stderr)
        sys.stdout.write(tomli_w.dumps(schema.to_toml_data(cfg)))
        return 0
    raise DockershError("usage: dockersh config check | dockersh config show USER", status=2)
