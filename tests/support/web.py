"""`dockersh web` for the tests: the installed one on 127.0.0.1, its own certificate, HTTP
helpers (http.client with an SSL context trusting only that certificate) and headless Chromium.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cmd import run, tail

DOCKERSH = "/usr/local/bin/dockersh"
HOST = "127.0.0.1"
#: Screenshots and page sources of failed browser tests (CI keeps this directory).
ARTIFACTS = Path("/var/tmp/dockersh-artifacts")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Every server started by this process and not yet stopped, for the failure report.
RUNNING_WEB: list[WebServer] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed pair for 127.0.0.1; the key root-only, as a host's would be."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert])
    key.chmod(0o600)
    return cert, key


def spki_hash(cert: Path) -> str:
    """base64 SHA-256 of the certificate's public key, for Chromium's
    --ignore-certificate-errors-spki-list (trusts exactly this key)."""
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(cert)],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def cookies(self) -> dict[str, str]:
        """Set-Cookie values by name (the whole header, attributes included)."""
        out = {}
        for header in self.headers.get_all("Set-Cookie") or []:
            out[header.split("=", 1)[0]] = header
        return out


@dataclass
class WebServer:
    """A running `dockersh web`; ``proc`` is the root broker."""

    port: int
    cert: Path
    proc: subprocess.Popen[bytes]
    log: Path
    context: ssl.SSLContext = field(init=False)

    def __post_init__(self) -> None:
        self.context = ssl.create_default_context(cafile=str(self.cert))

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def connection(self, timeout: float = 30) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(HOST, self.port, context=self.context,
                                           timeout=timeout)

    def request(self, method: str, path: str, *, auth: tuple[str, str] | None = None,
                form: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        all_headers = dict(headers or {})
        if auth is not None:
            all_headers["Authorization"] = basic(*auth)
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=all_headers)
            r = conn.getresponse()
            return Response(r.status, r.headers, r.read())
        finally:
            conn.close()

    def login(self, user: str, password: str) -> tuple[str, str]:
        """The login conversation as a browser has it: (session cookie, CSRF token)."""
        page = self.request("GET", "/login")
        login_cookie = page.cookies()["dockersh_login"].split(";")[0]
        token = hidden(page.text, "csrf")
        prompt = self.request("POST", "/login", form={"csrf": token, "user": user},
                              headers={"Cookie": login_cookie})
        assert prompt.status == 200 and "Password:" in prompt.text, prompt.text
        done = self.request("POST", "/login/answer",
                            form={"csrf": token, "conv": hidden(prompt.text, "conv"),
                                  "answer": password},
                            headers={"Cookie": login_cookie})
        assert done.status == 303, done.text
        cookie = done.cookies()["dockersh_session"].split(";")[0]
        index = self.request("GET", "/", headers={"Cookie": cookie})
        match = re.search(r'<meta name="csrf" content="([^"]+)">', index.text)
        assert match, index.text
        return cookie, match.group(1)

    def log_tail(self) -> str:
        return tail(self.log, 40)

    def stop(self) -> None:
        if self in RUNNING_WEB:
            RUNNING_WEB.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field in\n{page}"
    return match.group(1)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def start_web(workdir: Path, port: int, config: Path) -> WebServer:
    """The installed dockersh web on 127.0.0.1:port, once it answers over TLS."""
    log = workdir / "web.log"
    cert = workdir / "cert.pem"
    with log.open("wb") as out:
        proc = subprocess.Popen([DOCKERSH, "--config", str(config), "web", "--listen",
                                 f"{HOST}:{port}"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = WebServer(port, cert, proc, log)
    RUNNING_WEB.append(server)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dockersh web exited {proc.returncode}:\n{tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as raw, \
                    server.context.wrap_socket(raw, server_hostname=HOST):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError(f"dockersh web did not answer on {port} within 20 s:\n{tail(log)}")


def web_config(cert: Path, key: Path, extra: str = "") -> str:
    return f'\n[web]\ncertificate = "{cert}"\nkey = "{key}"\n{extra}'


class EventStream:
    """GET /api/v1/terminal/stream, its Server-Sent Events read by a thread into a queue."""

    def __init__(self, server: WebServer, auth: tuple[str, str], query: str = "") -> None:
        self.conn = server.connection(timeout=60)
        self.conn.request("GET", "/api/v1/terminal/stream" + query,
                          headers={"Authorization": basic(*auth)})
        self.sock = self.conn.sock  # the response takes it over (no length: read until closed)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.events: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.output = ""
        self.id = ""
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
            kind, self.id = self.next_event(20)
            assert kind == "connectionId", (kind, self.id)

    def _read(self) -> None:
        kind = "message"
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self.events.put((kind, line[6:]))
        except (OSError, ValueError, AttributeError):  # AttributeError: closed meanwhile
            pass
        self.events.put(None)

    def next_event(self, timeout: float) -> tuple[str, str]:
        event = self.events.get(timeout=timeout)
        assert event is not None, "the stream ended"
        return event

    def wait_for(self, pattern: str, timeout: float = 20) -> str:
        """Collect data events until the output matches ``pattern`` (a regex); the output."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in the output:\n{self.output!r}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                raise AssertionError(f"stream ended without {pattern!r}:\n{self.output!r}")
            if event[0] == "data":
                self.output += json.loads(event[1])
        return self.output

    def close(self) -> None:
        """Goes as a closed page does: at once. (Closing the response alone waits for the
        reader thread's read to end, up to the connection's 60 s timeout.)"""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


class Browsers:
    """Headless Chromium driven by Selenium; screenshots of each page on failure."""

    def __init__(self, workdir: Path, cert: Path) -> None:
        self.workdir, self.cert = workdir, cert
        self.drivers: list[Any] = []

    def __call__(self, width: int = 1000, height: int = 700) -> Any:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        assert shutil.which(CHROMEDRIVER), "chromium-driver is missing: run tests/setup-host.sh"
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        profile = self.workdir / f"chromium-{len(self.drivers)}"
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                    f"--window-size={width},{height}",
                    f"--ignore-certificate-errors-spki-list={spki_hash(self.cert)}"):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.drivers.append(driver)
        return driver

    def save_artifacts(self, name: str) -> list[Path]:
        """A screenshot and the page source of every open browser, under ARTIFACTS."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        saved = []
        for i, driver in enumerate(self.drivers):
            try:
                shot = ARTIFACTS / f"{safe}-{i}.png"
                driver.save_screenshot(str(shot))
                source = ARTIFACTS / f"{safe}-{i}.html"
                source.write_text(driver.page_source)
                saved += [shot, source]
            except Exception:  # a dead browser: nothing to save
                continue
        return saved

    def quit_all(self) -> None:
        for driver in self.drivers:
            try:
                driver.quit()
            except Exception:
                pass
