"""A tiny Docker Engine API client for the warm login path.

The Docker SDK costs ~165 ms to import; a warm login needs two GETs. So: HTTP over the unix
socket with the builtin ``_socket`` and JSON without the ``json`` module (jsontext.py). The SDK
is used only to pull. Which paths to ask is the back end's business (backend.py); errors come
out by kind (base.error_for).
"""

from __future__ import annotations

import _socket

from dockersh.backend.base import EngineError, Unreachable, error_for
from dockersh.jsontext import dumps, loads

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from typing import Any

#: No version prefix: the daemon's own API version. Debian 12's Docker 20.10 speaks up to 1.41,
#: Ubuntu 24.04's Docker 29 at least 1.44; what dockersh sends and reads is the same in both.
API = ""
TIMEOUT = 30.0


def socket_path(host: str) -> str:
    if not host.startswith("unix://"):
        raise EngineError(f"[docker] host must be a unix:// socket, not {host!r}")
    return host[len("unix://"):]


class Engine:
    #: For the one line a login prints when the engine cannot be reached.
    title = "the Docker engine"
    daemon = "is dockerd running?"

    def __init__(self, host: str, timeout: float = TIMEOUT) -> None:
        self.host = host
        self.path = socket_path(host)
        self.timeout = timeout

    def connect(self) -> _socket.socket:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise Unreachable(
                f"cannot reach {self.title} at {self.path} ({exc.strerror}); {self.daemon}"
            ) from None
        return sock

    #: The path prefix of every request (a back end whose engine needs a version names it).
    api = API

    def head(self, method: str, path: str, body: Any, extra: str = "") -> bytes:
        data = b"" if body is None else dumps(body).encode()
        kind = "Content-Type: application/json\r\n" if body is not None else ""
        return (f"{method} {self.api}{path} HTTP/1.1\r\nHost: docker\r\n{kind}{extra}"
                f"Content-Length: {len(data)}\r\n\r\n").encode() + data

    def request(self, method: str, path: str, body: Any = None,
                raw: bool = False) -> tuple[int, Any]:
        """One request (the connection closes after it); returns (status, decoded JSON or None,
        or with ``raw`` the body's bytes)."""
        return self.receive(self.send(method, path, body), raw)

    def send(self, method: str, path: str, body: Any = None) -> _socket.socket:
        """The first half of ``request``: the engine works on it while the caller goes on."""
        sock = self.connect()
        try:
            sock.sendall(self.head(method, path, body, "Connection: close\r\n"))
        except BaseException:
            sock.close()
            raise
        return sock

    @staticmethod
    def receive(sock: _socket.socket, raw: bool = False) -> tuple[int, Any]:
        """The second half of ``request``: read the whole answer, close the connection."""
        try:
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            raise Unreachable("the Docker engine did not answer in time") from None
        finally:
            sock.close()
        status, head, data = parse_head(b"".join(chunks))
        if b"transfer-encoding: chunked" in head.lower():
            data = _dechunk(data)
        if raw:
            return status, data
        text = data.decode("utf-8", "replace").strip()
        return status, (loads(text) if text else None)

    def hijack(self, path: str, body: Any) -> tuple[_socket.socket, bytes]:
        """POST that upgrades the connection to a raw stream (exec start); returns the socket
        and any stream bytes that arrived with the response head."""
        sock = self.connect()
        try:
            sock.sendall(self.head("POST", path, body, "Connection: Upgrade\r\nUpgrade: tcp\r\n"))
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    raise Unreachable("the Docker engine closed the connection")
                received += chunk
        except BaseException:
            sock.close()
            raise
        status, _, rest = parse_head(received)
        if status not in (101, 200):
            sock.close()
            raise error_for(status, f"the Docker engine refused to start the session ({status})")
        sock.settimeout(None)
        return sock, rest

    def call(self, method: str, path: str, body: Any = None, *,
             what: str = "the Docker engine answered", missing_ok: bool = False) -> Any:
        """A request whose error status becomes one line, ``what: the engine's message``, in
        an error of its kind (base.error_for)."""
        status, answer = self.request(method, path, body)
        if status < 300 or status == 304 or (missing_ok and status == 404):
            return answer
        message = answer.get("message") if isinstance(answer, dict) else answer
        raise error_for(status, f"{what}: {message}")

    def get(self, path: str) -> Any:
        """GET that returns the body, None on 404, and a clear error on anything else."""
        return self.gets(path)[0]

    def gets(self, *paths: str) -> list[Any]:
        """``get`` of several paths at once: all sent before any answer is read."""
        answers = []
        for path, sock in [(path, self.send("GET", path)) for path in paths]:
            status, answer = self.receive(sock)
            if status not in (200, 404):
                self.call("GET", path)  # raises with the engine's message
            answers.append(answer if status == 200 else None)
        return answers


def quote(part: str) -> str:
    """Percent-encode a path segment (names and image references may hold ':' and '/')."""
    safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in part)


def parse_head(response: bytes) -> tuple[int, bytes, bytes]:
    head, _, rest = response.partition(b"\r\n\r\n")
    try:
        return int(head.split(b"\r\n", 1)[0].split()[1]), head, rest
    except (IndexError, ValueError):
        raise EngineError("the Docker engine sent a malformed answer") from None


def _dechunk(body: bytes) -> bytes:
    out = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        body = rest[size + 2:]
    return b"".join(out)
