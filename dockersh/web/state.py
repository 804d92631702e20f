"""What the routes of the server and of the API share: the state, who asks, opening a terminal."""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from dockersh.config.schema import WebConfig
from dockersh.web.client import BrokerClient, BrokerGone, Conversation
from dockersh.web.durations import seconds
from dockersh.web.sessions import COOKIE, BasicCache, Sessions, WebSession
from dockersh.web.terminals import Terminal, Terminals

#: How long HTTP Basic credentials PAM accepted are taken without asking it again.
BASIC_LIFETIME = 300.0

SECURITY_HEADERS = {
    # xterm.js sets style attributes on its rows: inline styles, never inline scripts.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; connect-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on our forms.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class State:
    """Everything the routes share, kept on the app."""

    def __init__(self, broker: BrokerClient, web_config: WebConfig) -> None:
        self.broker = broker
        self.sessions = Sessions(seconds(web_config.idle_timeout, math.inf),
                                 seconds(web_config.session_timeout, math.inf))
        self.terminals = Terminals()
        self.grace = seconds(web_config.reconnect_grace)
        #: login conversations waiting for the browser's next answer, by id
        self.conversations: dict[str, tuple[Conversation, str, float]] = {}
        self.basic = BasicCache(BASIC_LIFETIME)


KEY = web.AppKey("state", State)


def state(request: web.Request) -> State:
    return request.app[KEY]


def client_of(request: web.Request) -> list[Any]:
    """[address, port] of the peer, for PAM_RHOST and the audit record."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return ["0.0.0.0", 0]
    return [str(peer[0]), int(peer[1])]


def session_of(request: web.Request) -> WebSession | None:
    return state(request).sessions.get(request.cookies.get(COOKIE))


def same_origin(request: web.Request) -> bool:
    """No Origin (not a browser, or a same-origin GET) or exactly ours."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"https://{request.host}"


def failure_text(event: dict[str, Any]) -> str:
    reason = event.get("reason")
    if reason == "locked":
        return "Too many failed logins; try again later"
    if reason == "refused":
        return str(event.get("text", "Refused"))
    if reason == "busy":
        return "Too many logins at once; try again in a moment"
    return "Login incorrect"


def size_of(query: Any) -> tuple[int, int]:
    try:
        rows, cols = int(query.get("rows", 24)), int(query.get("cols", 80))
    except ValueError:
        raise web.HTTPBadRequest(text="rows and cols must be numbers") from None
    if not (0 < rows <= 1000 and 0 < cols <= 1000):
        raise web.HTTPBadRequest(text="rows and cols must be 1 to 1000")
    return rows, cols


async def open_terminal(st: State, grant: str, user: str, request: web.Request,
                        grace: float) -> Terminal:
    rows, cols = size_of(request.query)
    try:
        fd = await st.broker.open(grant, rows, cols, client_of(request))
    except (BrokerGone, OSError, TimeoutError) as exc:
        raise web.HTTPForbidden(text=f"no session: {exc}") from None
    return st.terminals.add(Terminal(fd, user, grace))


