"""`dockersh web`'s docker-ssh API and its defences, with a plain HTTP client (http.client, TLS
trusting only the test's certificate), the installed dockersh and real users with passwords."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import pwd
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.web import EventStream, WebServer

pytestmark = pytest.mark.integration

AUDIT = Path("/var/log/dockersh/audit.jsonl")


def password() -> str:
    return f"pw-{secrets.token_hex(6)}"


def audit_records(user: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, AUDIT.read_text().splitlines()) if r.get("user") == user]


def wait_until(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def test_the_three_endpoints_with_basic_auth(web_server: Any, make_user: Any) -> None:
    server: WebServer = web_server()
    user = make_user(password=password())
    auth = (user.name, user.password)
    stream = EventStream(server, auth)
    try:
        stream.wait_for(r"\$ ")
        sent = server.request("POST", f"/api/v1/terminal/send/{stream.id}", auth=auth,
                              form={"data": "stty size; echo api-$((6*7)) é\n"})
        assert sent.status == 200, sent.text
        stream.wait_for(r"24 80\r\napi-42 é")
        resized = server.request("POST", f"/api/v1/terminal/resize-window/{stream.id}",
                                 auth=auth, form={"rows": "33", "cols": "101"})
        assert resized.status == 200, resized.text
        server.request("POST", f"/api/v1/terminal/send/{stream.id}", auth=auth,
                       form={"data": "stty size\n"})
        stream.wait_for(r"33 101")
    finally:
        stream.close()
    # The session is the user's own, through the privileged entry: audited with the web
    # client's address, and ended (hung up) when its stream went away.
    records = wait_until(lambda: [r for r in audit_records(user.name)
                                  if r["event"] == "session-end"] and audit_records(user.name))
    start = next(r for r in records if r["event"] == "session-start")
    assert start["remote"].startswith("127.0.0.1:") and start["command"] == "interactive"


def test_without_auth_401(web_server: Any, make_user: Any) -> None:
    server: WebServer = web_server()
    user = make_user(password=password())
    for method, path in (("GET", "/api/v1/terminal/stream"),
                         ("POST", "/api/v1/terminal/send/x"),
                         ("POST", "/api/v1/terminal/resize-window/x")):
        response = server.request(method, path, form={"data": "id\n"} if method == "POST" else None)
        assert response.status == 401, (path, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    wrong = server.request("GET", "/api/v1/terminal/stream", auth=(user.name, "wrong"))
    assert wrong.status == 401
    assert not audit_records(user.name)


def test_another_users_connection_id_is_refused(web_server: Any, make_user: Any) -> None:
    server: WebServer = web_server()
    alice, mallory = make_user(password=password()), make_user(password=password())
    stream = EventStream(server, (alice.name, alice.password))
    try:
        stream.wait_for(r"\$ ")
        bad = (mallory.name, mallory.password)
        for path, form in ((f"/api/v1/terminal/send/{stream.id}", {"data": "echo PWNED\n"}),
                           (f"/api/v1/terminal/resize-window/{stream.id}",
                            {"rows": "5", "cols": "5"})):
            response = server.request("POST", path, auth=bad, form=form)
            assert response.status == 404, response.text
        server.request("POST", f"/api/v1/terminal/send/{stream.id}",
                       auth=(alice.name, alice.password), form={"data": "stty size\n"})
        output = stream.wait_for(r"24 80")
        assert "PWNED" not in output
    finally:
        stream.close()


def test_failed_logins_are_throttled_per_user_and_address(web_server: Any,
                                                          make_user: Any) -> None:
    server: WebServer = web_server("max_failures = 3\n")
    victim, bystander = make_user(password=password()), make_user(password=password())

    def attempt(_: int) -> int:
        return server.request("GET", "/api/v1/terminal/stream",
                              auth=(victim.name, "guess")).status

    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # pam_faildelay: 2 s each
        assert list(pool.map(attempt, range(3))) == [401, 401, 401]
    right = server.request("GET", "/api/v1/terminal/stream", auth=(victim.name, victim.password))
    assert right.status == 429, right.text
    # The address is locked out too: guessing another user's password from it is refused.
    other = server.request("GET", "/api/v1/terminal/stream",
                           auth=(bystander.name, bystander.password))
    assert other.status == 429
    assert not audit_records(victim.name) and not audit_records(bystander.name)


def test_cookie_session_posts_need_the_csrf_token(web_server: Any, make_user: Any) -> None:
    server: WebServer = web_server()
    user = make_user(password=password())
    cookie, csrf = server.login(user.name, user.password)
    logout = server.request("POST", "/logout", form={}, headers={"Cookie": cookie})
    assert logout.status == 403
    crossed = server.request("POST", "/logout", form={"csrf": csrf},
                             headers={"Cookie": cookie, "Origin": "https://evil.example"})
    assert crossed.status == 403
    api = server.request("POST", "/api/v1/terminal/send/x", form={"data": "x"},
                         headers={"Cookie": cookie})
    assert api.status == 403
    assert server.request("GET", "/", headers={"Cookie": cookie}).status == 200
    done = server.request("POST", "/logout", form={"csrf": csrf}, headers={"Cookie": cookie})
    assert done.status == 303
    assert server.request("GET", "/", headers={"Cookie": cookie}).status == 303


def test_login_form_needs_its_token_and_cookies_are_locked_down(web_server: Any,
                                                                  make_user: Any) -> None:
    server: WebServer = web_server()
    user = make_user(password=password())
    forged = server.request("POST", "/login", form={"csrf": "x", "user": user.name},
                            headers={"Cookie": "dockersh_login=y"})
    assert forged.status == 403
    page = server.request("GET", "/login")
    for header in (page.cookies()["dockersh_login"], ):
        for flag in ("HttpOnly", "Secure", "SameSite=Strict"):
            assert flag in header, header
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_server_runs_unprivileged_and_refuses_non_members(web_server: Any,
                                                         make_user: Any) -> None:
    server: WebServer = web_server()
    # The HTTPS side: the broker's only child, as dockersh-web, no groups, no-new-privileges.
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    status = Path(f"/proc/{children.split()[0]}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    web_uid = pwd.getpwnam("dockersh-web").pw_uid
    assert fields["Uid"].split() == [str(web_uid)] * 4
    assert fields["Groups"].strip() == "" and fields["NoNewPrivs"].strip() == "1"
    assert fields["CapEff"].strip() == "0000000000000000"
    outsider = make_user(password=password(), in_dockersh=False)
    response = server.request("GET", "/api/v1/terminal/stream",
                              auth=(outsider.name, outsider.password))
    assert response.status == 401 and "not in group dockersh" in response.text
    assert not audit_records(outsider.name)


def test_the_page_reconnects_to_the_same_session(web_server: Any, make_user: Any) -> None:
    """A websocket that drops (a network blip) comes back to the same shell, with what it
    missed, within the grace period; a wrong CSRF token never gets one."""
    server: WebServer = web_server()
    user = make_user(password=password())
    cookie, csrf = server.login(user.name, user.password)
    headers = {"Cookie": cookie, "Origin": server.url}

    async def until(ws: aiohttp.ClientWebSocketResponse, text: str, seen: bytearray) -> int:
        try:
            async with asyncio.timeout(20):
                while text.encode() not in seen:
                    message = await ws.receive()
                    if message.type == aiohttp.WSMsgType.BINARY:
                        seen += message.data
                    elif message.type != aiohttp.WSMsgType.TEXT:
                        break
        except TimeoutError:
            pass
        assert text.encode() in seen, bytes(seen)
        return len(seen)

    async def scenario() -> None:
        async with aiohttp.ClientSession(headers=headers) as http:
            url = f"{server.url}/ws?csrf={csrf}&rows=24&cols=80"
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(f"{server.url}/ws?csrf=wrong", ssl=server.context)
            seen = bytearray()
            ws = await http.ws_connect(url, ssl=server.context)
            await until(ws, "$ ", seen)  # typed earlier, the input would be flushed at raw mode
            await ws.send_json({"type": "input", "data": "MARK=$((40+2)); echo set-$MARK\n"})
            offset = await until(ws, "set-42", seen)
            await ws.close()
            ws = await http.ws_connect(f"{url}&since={offset}", ssl=server.context)
            assert (await ws.receive_json()) == {"type": "offset", "value": offset}
            await ws.send_json({"type": "input", "data": "echo again-$MARK\n"})
            await until(ws, "again-42", bytearray())
            await ws.close()

    asyncio.run(scenario())
    starts = [r for r in audit_records(user.name) if r["event"] == "session-start"]
    assert len(starts) == 1
