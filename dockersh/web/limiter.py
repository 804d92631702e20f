"""Failed logins, counted per user and per client address; too many locks both out for a while.

Kept by the root broker, which runs every PAM conversation: a compromised web server cannot
guess passwords faster than this allows (it can lie about the client's address, not the user).
"""

from __future__ import annotations

import threading
import time


class Limiter:
    def __init__(self, max_failures: int, window: float, lockout: float) -> None:
        self.max_failures, self.window, self.lockout = max_failures, window, lockout
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def locked(self, *keys: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(self._locked_until.get(key, 0.0) > now for key in keys)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                recent = [t for t in self._failures.get(key, []) if now - t < self.window]
                recent.append(now)
                self._failures[key] = recent
                if len(recent) >= self.max_failures:
                    self._locked_until[key] = now + self.lockout
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Bound the memory an attacker can make us use: drop what no longer counts."""
        for key in [k for k, ts in self._failures.items() if now - ts[-1] >= self.window]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
