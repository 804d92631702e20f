"""The unprivileged half of ``dockersh web``: HTTPS, the login conversation, the terminal page
and its websocket (the docker-ssh API is in ``api``). It holds pty masters and relays bytes; it
cannot authenticate anyone or start anything without the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import socket
import ssl
import time
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from dockersh.config.schema import WebConfig
from dockersh.web import api, pages
from dockersh.web.client import BrokerClient, BrokerGone, Conversation
from dockersh.web.sessions import COOKIE, COOKIE_FLAGS, LOGIN_COOKIE, WebSession, same
from dockersh.web.state import (
    KEY,
    SECURITY_HEADERS,
    State,
    client_of,
    failure_text,
    open_terminal,
    same_origin,
    session_of,
    state,
)
from dockersh.web.terminals import Terminal

STATIC = {"style.css", "terminal.js", "vendor/xterm.js", "vendor/xterm.css",
          "vendor/addon-fit.js"}
#: How long a login conversation may wait between two answers.
CONVERSATION_TIMEOUT = 120.0
SWEEP_EVERY = 5.0


@web.middleware
async def protect(request: web.Request, handler: Any) -> web.StreamResponse:
    """Security headers on everything; cross-site requests that change state are refused."""
    if request.method not in ("GET", "HEAD") and not same_origin(request):
        raise web.HTTPForbidden(text="cross-origin request refused")
    response: web.StreamResponse = await handler(request)
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


def html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


# --- login, logout ---------------------------------------------------------------------------


def login_page(request: web.Request, error: str = "", messages: list[str] | None = None,
               status: int = 200) -> web.Response:
    """The login form, with a fresh double-submit token in a cookie and in the form."""
    token = secrets.token_urlsafe(24)
    response = html(pages.login(token, error, messages), status)
    response.set_cookie(LOGIN_COOKIE, token, **COOKIE_FLAGS)  # type: ignore[arg-type]
    return response


async def get_login(request: web.Request) -> web.StreamResponse:
    if session_of(request) is not None:
        raise web.HTTPSeeOther("/")
    return login_page(request)


async def login_form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    token = form.get("csrf")
    if not isinstance(token, str) or not same(request.cookies.get(LOGIN_COOKIE), token):
        raise web.HTTPForbidden(text="missing or wrong CSRF token; reload the login page")
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def post_login(request: web.Request) -> web.StreamResponse:
    form = await login_form(request)
    user = form.get("user", "").strip()
    if not user:
        return login_page(request, "Login incorrect", status=401)
    try:
        conversation = state(request).broker.converse(user, client_of(request))
    except (BrokerGone, OSError):
        raise web.HTTPServiceUnavailable(text="the broker is gone") from None
    return await step(request, conversation, form["csrf"])


async def post_answer(request: web.Request) -> web.StreamResponse:
    form = await login_form(request)
    waiting = state(request).conversations.pop(form.get("conv", ""), None)
    if waiting is None or not same(waiting[1], form["csrf"]):
        return login_page(request, "The login took too long; start again", status=401)
    conversation = waiting[0]
    conversation.answer(form.get("answer", ""))
    return await step(request, conversation, form["csrf"])


async def step(request: web.Request, conversation: Conversation, csrf: str) -> web.StreamResponse:
    """Show PAM's next prompt, or the outcome of the conversation."""
    st = state(request)
    event = await conversation.next()
    if event.get("event") == "prompt":
        st.conversations[conversation.id] = (conversation, csrf, time.monotonic())
        return html(pages.prompt(csrf, conversation.id, conversation.user,
                                 str(event.get("text", "")), bool(event.get("echo")),
                                 conversation.messages))
    if not event.get("ok"):
        return login_page(request, failure_text(event), conversation.messages, status=401)
    session = st.sessions.create(str(event["user"]), str(event["grant"]))
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, session.token, **COOKIE_FLAGS)  # type: ignore[arg-type]
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


def end_session(st: State, session: WebSession) -> None:
    st.sessions.end(session)
    st.broker.revoke(session.grant)
    if session.terminal is not None:
        session.terminal.close()


async def post_logout(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is not None:
        form = await request.post()
        token = form.get("csrf")
        if not isinstance(token, str) or not same(session.csrf, token):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
        end_session(state(request), session)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


# --- the terminal page and its websocket -----------------------------------------------------


async def get_index(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is None:
        raise web.HTTPSeeOther("/login")
    return html(pages.terminal(session.user, session.csrf))


async def get_static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    data = resources.files("dockersh.web").joinpath("static", *name.split("/")).read_bytes()
    kind = {"js": "text/javascript", "css": "text/css"}[name.rsplit(".", 1)[1]]
    return web.Response(body=data, content_type=kind, charset="utf-8")


async def get_ws(request: web.Request) -> web.StreamResponse:
    st = state(request)
    session = session_of(request)
    if session is None:
        raise web.HTTPUnauthorized(text="log in first")
    # A websocket is not covered by SameSite for every browser: check the origin and the token.
    if not same_origin(request) or not same(request.query.get("csrf"), session.csrf):
        raise web.HTTPForbidden(text="cross-origin or missing CSRF token")
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        since = 0
    terminal = session.terminal
    if terminal is None or terminal.closed:
        terminal = session.terminal = await open_terminal(st, session.grant, session.user,
                                                          request, st.grace)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=1 << 20)
    await ws.prepare(request)
    output, offset, replay = terminal.attach(since)
    pump = asyncio.create_task(forward(output, ws))
    try:
        await ws.send_json({"type": "offset", "value": offset})
        if replay:
            await ws.send_bytes(replay)
        async for message in ws:
            if message.type != WSMsgType.TEXT or st.sessions.get(session.token) is None:
                continue
            handle_input(terminal, message.data)
    finally:
        pump.cancel()
        terminal.detach(output)
    return ws


def handle_input(terminal: Terminal, text: str) -> None:
    try:
        message = json.loads(text)
        if message.get("type") == "input" and isinstance(message.get("data"), str):
            terminal.write(message["data"].encode())
        elif message.get("type") == "resize":
            terminal.resize(int(message["rows"]), int(message["cols"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass


async def forward(output: asyncio.Queue[bytes | None], ws: web.WebSocketResponse) -> None:
    while (data := await output.get()) is not None:
        await ws.send_bytes(data)
    with contextlib.suppress(ConnectionError):
        await ws.send_json({"type": "exit"})
        await ws.close()


# --- the process -----------------------------------------------------------------------------


async def sweep(st: State) -> None:
    """End sessions past a timeout, and login conversations nobody answers."""
    while True:
        await asyncio.sleep(SWEEP_EVERY)
        for session in st.sessions.expired():
            end_session(st, session)
        now = time.monotonic()
        for conv in [c for c, (_, _, t) in st.conversations.items()
                     if now - t > CONVERSATION_TIMEOUT]:
            st.conversations.pop(conv)[0].answer(None)


def make_app(broker: BrokerClient, web_config: WebConfig) -> web.Application:
    app = web.Application(middlewares=[protect], client_max_size=1 << 20)
    app[KEY] = State(broker, web_config)
    app.router.add_get("/", get_index)
    app.router.add_get("/login", get_login)
    app.router.add_post("/login", post_login)
    app.router.add_post("/login/answer", post_answer)
    app.router.add_post("/logout", post_logout)
    app.router.add_get("/ws", get_ws)
    app.router.add_get("/static/{name:.+}", get_static)
    api.add_routes(app)
    return app


async def main(listener: socket.socket, context: ssl.SSLContext, sock: socket.socket,
               web_config: WebConfig) -> None:
    broker = BrokerClient(sock)
    app = make_app(broker, web_config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                           handler_cancellation=True)
    await runner.setup()
    await web.SockSite(runner, listener, ssl_context=context).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    sweeper = asyncio.create_task(sweep(app[KEY]))
    gone = asyncio.create_task(broker.gone.wait())
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait([gone, waiting], return_when=asyncio.FIRST_COMPLETED)
    sweeper.cancel()
    app[KEY].terminals.close_all()
    await runner.cleanup()


def serve(listener: socket.socket, context: ssl.SSLContext, sock: socket.socket,
          web_config: WebConfig) -> None:
    asyncio.run(main(listener, context, sock, web_config))
