"""docker-ssh's HTTP API, authenticated: HTTP Basic (checked by the broker through PAM) or the
browser's session cookie (then with its CSRF token on POSTs).

- ``GET /api/v1/terminal/stream``: a new session; Server-Sent Events: ``connectionId`` (its
  id), then ``data`` events whose data is the output as a JSON string; the stream ends with the
  session, and the session (after no grace) with the stream.
- ``POST /api/v1/terminal/send/ID``: form field ``data``, written to the session's input.
- ``POST /api/v1/terminal/resize-window/ID``: form fields ``rows``, ``cols``.

An id names a session only for the user who opened it: anyone else gets 404, as for no id.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json

from aiohttp import web

from dockersh.web.sessions import same
from dockersh.web.state import (
    SECURITY_HEADERS,
    client_of,
    failure_text,
    open_terminal,
    session_of,
    size_of,
    state,
)

REALM = 'Basic realm="dockersh", charset="UTF-8"'


def unauthorized(text: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text=text, headers={"WWW-Authenticate": REALM})


def basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        user, sep, password = decoded.partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep and user else None


async def authenticated(request: web.Request) -> tuple[str, str]:
    """(user, grant) of the request, or 401 (429 while the user or address is locked out)."""
    st = state(request)
    session = session_of(request)
    header = request.headers.get("Authorization")
    if session is not None and header is None:
        if request.method == "POST" and not same(request.headers.get("X-CSRF-Token"),
                                                 session.csrf):
            raise web.HTTPForbidden(text="missing or wrong X-CSRF-Token")
        return session.user, session.grant
    credentials = basic_credentials(header or "")
    if credentials is None:
        raise unauthorized("authentication required (HTTP Basic or a session cookie)")
    user, password = credentials
    grant = st.basic.get(user, password)
    if grant is not None:
        return user, grant
    event = await st.broker.converse(user, client_of(request), password).next()
    if event.get("ok"):
        st.basic.put(user, password, str(event["grant"]))
        return user, str(event["grant"])
    if event.get("reason") == "locked":
        raise web.HTTPTooManyRequests(text="too many failed logins; try again later",
                                      headers={"Retry-After": "60"})
    raise unauthorized(failure_text(event))


async def stream(request: web.Request) -> web.StreamResponse:
    st = state(request)
    user, grant = await authenticated(request)
    terminal = await open_terminal(st, grant, user, request, grace=0.0)
    output, _, _ = terminal.attach()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    response.headers.update(SECURITY_HEADERS)
    try:
        await response.prepare(request)
        await response.write(f"event: connectionId\ndata: {terminal.id}\n\n".encode())
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while (data := await output.get()) is not None:
            text = decoder.decode(data)
            if text:
                await response.write(f"event: data\ndata: {json.dumps(text)}\n\n".encode())
    finally:
        terminal.detach(output)
    return response


async def form_of(request: web.Request) -> tuple[str, dict[str, str]]:
    """The user, and the form of a POST naming one of their sessions (404 otherwise)."""
    user, _ = await authenticated(request)
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    return user, form


async def send(request: web.Request) -> web.StreamResponse:
    user, form = await form_of(request)
    terminal = state(request).terminals.get(request.match_info["id"], user)
    if terminal is None:
        raise web.HTTPNotFound(text="no such connection")
    terminal.write(form.get("data", "").encode())
    return web.Response(text="ok")


async def resize(request: web.Request) -> web.StreamResponse:
    user, form = await form_of(request)
    terminal = state(request).terminals.get(request.match_info["id"], user)
    if terminal is None:
        raise web.HTTPNotFound(text="no such connection")
    rows, cols = size_of(form)
    terminal.resize(rows, cols)
    return web.Response(text="ok")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/terminal/stream", stream)
    app.router.add_post("/api/v1/terminal/send/{id}", send)
    app.router.add_post("/api/v1/terminal/resize-window/{id}", resize)
