"""Fixtures that give every test the real thing: dockerd, sshd on 127.0.0.1, Linux users, tmux.

Run as root (tests/run does; tests/setup-host.sh installs the OS packages). The helpers live in
tests/support/; this file only wires them into fixtures and hooks.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

# Before the first import of a helper: their asserts explain themselves like a test's do.
pytest.register_assert_rewrite("support")

from support import docker, engine, images, in_ci, install, noskip, statedirs  # noqa: E402
from support.cmd import tail  # noqa: E402
from support.sshd import DROPIN, RUNNING, SshdFactory, SshServer, start_sshd  # noqa: E402
from support.terminal import TmuxTerminal  # noqa: E402
from support.users import MADE, UserFactory, UserMaker  # noqa: E402
from support.web import (  # noqa: E402
    RUNNING_WEB,
    Browsers,
    WebServer,
    free_port,
    make_certificate,
    start_web,
    web_config,
)

pytest_plugins = ["pytester"]

_containers_before = pytest.StashKey[set[str]]()


def pytest_configure(config: pytest.Config) -> None:
    noskip.install(config)
    engine.use()


#: Tests that boot a systemd container sharing the host's cgroup tree. Its systemd adds a
#: name=systemd hierarchy to the host's cgroup v1 tree; on these machines, after that, dockerd
#: logged "cannot find cgroup mount destination" for every container and reported no OOM kill
#: (the oom-killed recovery test failed). They run last.
LAST = ("test_members_get_no_systemd_user_manager",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.name.split("[")[0] in LAST)  # stable: the rest keeps order


# --- Docker ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A Docker SDK client (docker.DockerClient) for the engine under test (dockerd, or
    Podman's Docker-compatible socket: tests/support/engine.py), which answers."""
    import docker as docker_sdk

    docker.ensure_running()
    client = docker_sdk.from_env(timeout=300)
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_engine: Any) -> str:
    """'dockersh-test/busybox:latest', built by tests/images/make-busybox.sh when stale."""
    return images.ensure_busybox_image()


@pytest.fixture(scope="session")
def session_image(docker_engine: Any) -> str:
    """'dockersh-session:latest', built from the repo's Dockerfile when missing or changed."""
    return images.ensure_session_image()


@pytest.fixture(scope="session", autouse=True)
def _no_containers_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """At the end, remove every dockersh-labelled container this run made, and check it worked,
    and the files dockersh keeps for them (statedirs).

    "This run made": labelled for a user this run made, or, under CI (where nothing else runs),
    any labelled container that was not there at the start. A developer's other test run on
    the same machine keeps its containers.
    """
    up = docker.answers()
    before = set(docker.containers()) if up else set()
    request.config.stash[_containers_before] = before
    state_before = statedirs.entries()
    yield
    if not (up or docker.answers()):
        statedirs.remove_new(state_before)
        return

    def ours() -> list[str]:
        return [c for c, user in docker.containers_by_user().items()
                if c not in before and (user in MADE or in_ci())]

    docker.remove(ours())
    left = ours()
    statedirs.remove_new(state_before)
    assert not left, f"containers labelled {docker.USER_LABEL} could not be removed: {left}"


# --- The installed dockersh -----------------------------------------------------------------


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[install.Installation]:
    """The repo's ./install.sh, run once; /etc/dockersh is put back as it was at the end."""
    docker.ensure_running()
    images.ensure_debian_base()  # install.sh builds the session image on top of it
    install.restore_nsswitch()
    backup = install.backup_etc(tmp_path_factory.mktemp("etc-backup") / "dockersh")
    try:
        yield install.run_install()
    finally:
        install.restore_etc(backup)


@pytest.fixture
def dockersh_config(
    installed: install.Installation, test_image: str
) -> Iterator[Callable[..., Path]]:
    """Writes the test config now; call it with TOML text to replace it. Restored afterwards."""
    previous = install.CONFIG.read_bytes() if install.CONFIG.exists() else None

    def write(text: str = install.DEFAULT_TEST_CONFIG) -> Path:
        # On the Podman pass, a config without it would test dockerd instead (and leave its
        # containers there, out of sight of the cleanup).
        assert engine.CONFIG in text, f"a test config must start with engine.CONFIG: {text!r}"
        return install.write_config(text)

    write()
    yield write
    if previous is None:
        install.CONFIG.unlink(missing_ok=True)
    else:
        install.write_config(previous.decode())


# --- Users ----------------------------------------------------------------------------------


@pytest.fixture
def make_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserFactory]:
    """Makes real users; removes them, their containers and their processes afterwards."""
    maker = UserMaker(tmp_path_factory.mktemp("keys"))
    yield maker
    maker.remove_all()


# --- sshd -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdFactory]:
    """sshd(extra=(), options=None) -> a running SshServer on 127.0.0.1.

    One server per distinct (extra, options, content of the dockersh drop-in), reused across
    the session: the drop-in is read when sshd starts, so a server started before install.sh
    ran is not handed out after it.
    """
    servers: dict[tuple[Any, ...], SshServer] = {}

    def get(extra: Sequence[str] = (), options: Mapping[str, str] | None = None) -> SshServer:
        dropin = DROPIN.read_bytes() if DROPIN.exists() else None
        key = (tuple(extra), tuple(sorted((options or {}).items())), dropin)
        server = servers.get(key)
        if server is None or not server.alive():
            server = start_sshd(tmp_path_factory.mktemp("sshd"), extra, options)
            servers[key] = server
        return server

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture
def ssh(sshd: SshdFactory) -> Callable[..., Any]:
    """The default server's ssh(user, cmd=None, *, tty, input, env, extra_opts, timeout)."""
    return sshd().ssh


# --- Terminals ------------------------------------------------------------------------------


@pytest.fixture
def tmux_terminal(tmp_path: Path) -> Iterator[Callable[..., TmuxTerminal]]:
    """tmux_terminal(command, *, width=100, height=30, env=None) -> TmuxTerminal."""
    assert shutil.which("tmux"), "tmux is not installed: run tests/setup-host.sh"
    terminals: list[TmuxTerminal] = []

    def start(command: str | Sequence[str], **kwargs: Any) -> TmuxTerminal:
        terminal = TmuxTerminal(command, confdir=tmp_path, **kwargs)
        terminals.append(terminal)
        return terminal

    yield start
    for terminal in terminals:
        terminal.close()


# --- dockersh web ----------------------------------------------------------------------------


@pytest.fixture
def web_server(
    installed: install.Installation, test_image: str, tmp_path: Path
) -> Iterator[Callable[..., WebServer]]:
    """web_server(extra="") -> the installed `dockersh web` on 127.0.0.1 and a free port, with
    a certificate and a config file of its own (``--config``, which its sessions get too: other
    tests may rewrite the global one meanwhile), ``extra`` TOML lines in its [web] table."""
    servers: list[WebServer] = []

    def start(extra: str = "") -> WebServer:
        cert, key = make_certificate(tmp_path)
        config = tmp_path / "dockersh.toml"
        config.write_text(install.DEFAULT_TEST_CONFIG + web_config(cert, key, extra))
        server = start_web(tmp_path, free_port(), config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browsers]:
    """browser(width, height) -> a headless Chromium (Selenium) trusting web_server's
    certificate; screenshots go to support.web.ARTIFACTS when the test fails."""
    browsers = Browsers(tmp_path, tmp_path / "cert.pem")
    yield browsers
    browsers.quit_all()


# --- Failure report -------------------------------------------------------------------------


def _failure_report(item: pytest.Item) -> str:
    parts = []
    if docker.answers():
        before = item.config.stash.get(_containers_before, set())
        ids = [c for c in docker.containers() if c not in before]
        parts.append(docker.diagnostics(ids))
    for server in RUNNING:
        parts.append(f"--- sshd on port {server.port}: {server.log}\n{server.log_tail()}")
    maker = getattr(item, "funcargs", {}).get("make_user")
    names = [u.name for u in maker.made] if isinstance(maker, UserMaker) else []
    audit = Path("/var/log/dockersh/audit.jsonl")
    if names:
        lines = [line for line in tail(audit, 500).splitlines()
                 if any(f'"{name}"' in line for name in names)]
        parts.append(f"--- {audit}, lines about {', '.join(names)}")
        parts.extend(lines[-30:])
    else:
        parts.append(f"--- {audit}\n{tail(audit, 20)}")
    browsers = getattr(item, "funcargs", {}).get("browser")
    if isinstance(browsers, Browsers):
        saved = browsers.save_artifacts(item.name)
        parts.append("--- browser artifacts: " + (" ".join(map(str, saved)) or "none"))
    for web in RUNNING_WEB:
        parts.append(f"--- dockersh web log {web.log}\n{web.log_tail()}")
    engine_log = Path(engine.LOG)
    problems = [line for line in tail(engine_log, 300).splitlines()
                if "level=error" in line or "level=fatal" in line]
    parts.append(f"--- errors at the end of {engine_log}")
    parts.extend(problems[-20:])
    return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """On a failure, add containers, their logs and the sshd log to the test's report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.failed:
        try:
            text = _failure_report(item)
        except Exception as exc:  # the report must never hide the failure itself
            text = f"(could not collect diagnostics: {exc!r})"
        report.sections.append(("dockersh diagnostics", text))
