"""The entry's failure path: one line, whatever the terminal sends while it is being reported."""

from __future__ import annotations

import os
import signal

import pytest

from dockersh import cli
from dockersh.errors import DockershError


@pytest.mark.parametrize("failure", [DockershError("refused here"), RuntimeError("broken")])
def test_a_ctrl_c_while_the_failure_is_reported_changes_nothing(
        failure: Exception, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The user can time Ctrl-C (or Ctrl-\\, Ctrl-Z) to the `dockersh:` line; it arrived while the
    audit record was written, and Python printed two tracebacks instead, with no record."""
    def run(*_: object) -> int:
        raise failure

    recorded: list[str] = []

    def audit_failure(_login: object, _exc: object, reason: str) -> None:
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
            os.kill(os.getpid(), sig)
        recorded.append(reason)

    monkeypatch.setattr(cli, "run", run)
    monkeypatch.setattr(cli, "audit_failure", audit_failure)
    monkeypatch.setattr(cli, "log_error", lambda _message: None)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP)}
    try:
        status = cli.main(["dockersh", "-c", "true"])
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert status == (125 if isinstance(failure, DockershError) else cli.EXIT_ERROR)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("dockersh: ") and len(recorded) == 1
