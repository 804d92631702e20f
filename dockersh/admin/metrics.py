"""`dockersh metrics`: Prometheus text exposition, computed at each call from the audit file
and the engine's list of containers (dockersh keeps no counters of its own: the audit file is
the record). The counters count the records in the current audit file, so they restart when
logrotate rotates it, which Prometheus' rate() takes as a counter reset; active sessions are
also found in the rotated file. gc writes the same
text for node_exporter's textfile collector (``[audit] metrics_textfile``).
"""

from __future__ import annotations

import bisect
import itertools
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dockersh import statefiles
from dockersh.admin import auditlog
from dockersh.backend.base import Unreachable
from dockersh.backend.registry import get_backend
from dockersh.config.schema import Config
from dockersh.errors import DockershError
from dockersh.labels import LABEL_USER
from dockersh.plan import pipeline

if TYPE_CHECKING:
    from dockersh.backend.base import Backend

#: Login latency buckets (seconds): a warm login takes tens of milliseconds, a first one (image
#: probe, create, start) seconds, one that pulls its image minutes.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: The engine's container states, reported even at 0 so that a series does not vanish.
STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
LOGINS = {"session-start": "ok", "login-refused": "refused", "login-error": "error"}
CONTAINER_EVENTS = (("container-created", "first_logins", "Logins that created the user's "
                     "container (a first login, or one after `dockersh rm`)"),
                    ("container-started", "container_starts", "Logins that started (or "
                     "unpaused) the user's stopped container"),
                    ("container-recreated", "container_recreations", "Logins that recreated "
                     "the user's container for a changed config or image"))


class Histogram:
    """Cumulative buckets as the exposition has them (+Inf last), counted as values come."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf's
        self.sum = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        upper = [*(repr(float(b)) for b in self.bounds), "+Inf"]
        return list(zip(upper, map(float, itertools.accumulate(self.counts)), strict=True))


class Tally:
    """What the families need of the audit records, read as a stream (a week of logins is not
    held in memory): counts by event, the latency histogram, and the sessions still open, of
    which those whose monitor runs are active. ``carried``: the rotated file's open starts."""

    def __init__(self, records: Iterable[dict[str, Any]],
                 carried: dict[str, dict[str, Any]]) -> None:
        self.events: Counter[str] = Counter()
        self.latency = Histogram(LATENCY_BUCKETS)
        starts = auditlog.unended(self.counted(records), carried)
        booted = auditlog.boot_time()
        self.active = sum(auditlog.monitor_alive(start, booted) for start in starts.values())

    def counted(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for record in records:
            event, latency = str(record.get("event")), record.get("latency")
            self.events[event] += 1
            if event == "session-start" and isinstance(latency, int | float):
                self.latency.add(float(latency))
            yield record


class AuditCollector(Collector):
    """The families, from the audit records (None: ``[audit] file = ""``, so there are no
    session and login families) and the containers' states (None: the engine did not answer,
    so there are none to report and dockersh_engine_up is 0)."""

    def __init__(self, records: Iterable[dict[str, Any]] | None, states: list[str] | None,
                 carried: dict[str, dict[str, Any]] | None = None) -> None:
        self.tally = None if records is None else Tally(records, carried or {})
        self.states = states

    def collect(self) -> Iterator[Metric]:
        if self.tally is not None:
            yield from self.from_audit(self.tally)
        yield GaugeMetricFamily("dockersh_engine_up", "Whether the container engine answered",
                                0 if self.states is None else 1)
        if self.states is not None:
            by_state = GaugeMetricFamily("dockersh_containers", "dockersh's containers by the "
                                         "engine's state", labels=["state"])
            counted = Counter(self.states)
            for state in sorted({*STATES, *counted}):
                by_state.add_metric([state], counted[state])
            yield by_state

    @staticmethod
    def from_audit(tally: Tally) -> Iterator[Metric]:
        events = tally.events
        yield GaugeMetricFamily("dockersh_sessions_active",
                                "Sessions whose monitor runs (started, not ended)", tally.active)
        logins = CounterMetricFamily("dockersh_logins", "Logins by result: ok (the session "
                                     "started), refused (dockersh said no), error (something "
                                     "failed)", labels=["result"])
        for event, result in LOGINS.items():
            logins.add_metric([result], events[event])
        yield logins
        for event, name, documentation in CONTAINER_EVENTS:
            yield CounterMetricFamily(f"dockersh_{name}", documentation, events[event])
        yield HistogramMetricFamily("dockersh_login_latency_seconds", "Seconds from dockersh's "
                                    "start to the session's handoff", tally.latency.buckets(),
                                    tally.latency.sum)


def container_states(backend: Backend) -> list[str] | None:
    try:
        return [item.state or "unknown" for item in backend.list_by_label(LABEL_USER)]
    except Unreachable:
        return None


def exposition(config: Config) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    path = config.audit.file  # "": the engine's families only
    states = container_states(get_backend(config))
    registry.register(AuditCollector(auditlog.records(path), states, auditlog.carried_over(path))
                      if path else AuditCollector(None, states))
    return generate_latest(registry)


def run(config_path: str) -> int:
    sys.stdout.buffer.write(exposition(pipeline.global_config(config_path)))
    return 0


def write_textfile(config: Config) -> None:
    """gc's part: the exposition as node_exporter's textfile, replaced in one rename. Not
    written when its directory is missing (no node_exporter collector on this host)."""
    path = config.audit.metrics_textfile
    if not path or not os.path.isdir(os.path.dirname(path)):
        return
    data = exposition(config)
    try:
        statefiles.write(path, data, 0o644)
    except OSError as exc:
        raise DockershError(f"cannot write the metrics textfile {path} ({exc.strerror})") \
            from None
