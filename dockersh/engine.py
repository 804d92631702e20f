"""A tiny Docker Engine API client for the warm login path.

The Docker SDK costs ~165 ms to import; a warm login needs two GETs. So: HTTP/1.0 over the unix
socket with the builtin ``_socket`` and JSON with the C scanner behind the ``json`` module (whose
own import pulls in ``re``). The SDK is used only when a container must be created.
"""

from __future__ import annotations

import _socket

from dockersh.errors import DockershError

TYPE_CHECKING = False  # importing typing costs 14 ms on every login
if TYPE_CHECKING:
    from typing import Any

API = "/v1.41"
TIMEOUT = 30.0


class _JSONContext:
    """The attributes the C scanner reads from json.JSONDecoder, with json's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float


def loads(text: str) -> Any:
    try:
        from _json import make_scanner
    except ImportError:  # an interpreter without the C accelerator
        import json

        return json.loads(text)
    value, end = make_scanner(_JSONContext())(text, 0)  # type: ignore[arg-type]
    if text[end:].strip():
        raise ValueError("trailing data after JSON value")
    return value


def socket_path(host: str) -> str:
    if not host.startswith("unix://"):
        raise DockershError(f"[docker] host must be a unix:// socket, not {host!r}")
    return host[len("unix://"):]


class Engine:
    def __init__(self, host: str, timeout: float = TIMEOUT) -> None:
        self.host = host
        self.path = socket_path(host)
        self.timeout = timeout

    def request(self, method: str, path: str) -> tuple[int, Any]:
        """One request; returns (status, decoded JSON body or None)."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(self.path)
            except OSError as exc:
                raise DockershError(
                    f"cannot reach the Docker engine at {self.path} ({exc.strerror}); "
                    "is dockerd running?"
                ) from None
            sock.sendall(f"{method} {API}{path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            raise DockershError("the Docker engine did not answer in time") from None
        finally:
            sock.close()
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            raise DockershError("the Docker engine sent a malformed answer") from None
        if b"transfer-encoding: chunked" in head.lower():
            body = _dechunk(body)
        text = body.decode("utf-8", "replace").strip()
        return status, (loads(text) if text else None)

    def get(self, path: str) -> Any:
        """GET that returns the body, None on 404, and a clear error on anything else."""
        status, body = self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            message = body.get("message") if isinstance(body, dict) else body
            raise DockershError(f"the Docker engine answered {status}: {message}")
        return body

    def container(self, name: str) -> dict[str, Any] | None:
        return self.get(f"/containers/{quote(name)}/json")  # type: ignore[no-any-return]

    def image_id(self, ref: str) -> str | None:
        image = self.get(f"/images/{quote(ref)}/json")
        return None if image is None else str(image["Id"])


def quote(part: str) -> str:
    """Percent-encode a path segment (names and image references may hold ':' and '/')."""
    safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in part)


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
