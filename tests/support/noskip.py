"""Skipped tests fail the run when CI is set or DOCKERSH_NO_SKIP=1.

A test skipped for a missing component proves nothing: the setup must install the component.
tests/conftest.py calls install() from pytest_configure.
"""

from __future__ import annotations

import os

import pytest

from . import in_ci


def skips_are_failures() -> bool:
    return in_ci() or os.environ.get("DOCKERSH_NO_SKIP") == "1"


class NoSkip:
    """Counts skipped tests (not xfails) and turns a green run with skips into a failure."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.skipped and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.skipped:
            terminalreporter.section("skipped tests fail this run", red=True)
            terminalreporter.line("CI or DOCKERSH_NO_SKIP=1 is set: a skipped test is a failure.")
            for nodeid in self.skipped:
                terminalreporter.line(f"SKIPPED {nodeid}")


def install(config: pytest.Config) -> None:
    if skips_are_failures():
        config.pluginmanager.register(NoSkip(), "dockersh-noskip")
