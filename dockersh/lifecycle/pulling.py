"""Pulling an image with a progress bar on stderr (a first login's, or ``dockersh pull``'s)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from dockersh.backend.base import EngineError, Unreachable
from dockersh.lifecycle.progress import Bar

if TYPE_CHECKING:
    from dockersh.backend.base import Backend


def pull_one(backend: Backend, image: str) -> bool:
    """Pull ``image``; False, and one line, when it cannot be pulled (an engine that cannot be
    reached is an error, not a failed pull)."""
    bar = Bar(image)
    try:
        outcome = backend.pull(image, bar.update)
    except Unreachable:
        raise
    except EngineError as exc:
        bar.finish("failed", complete=False)
        print(f"dockersh: {exc.message}", file=sys.stderr)
        return False
    bar.finish(outcome)
    return True
