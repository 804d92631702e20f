"""`dockersh web` in a real browser: Debian's headless Chromium driven by Selenium.

Screenshots and page sources of a failed test land in /var/tmp/dockersh-artifacts (named in
the failure report).
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from support.web import WebServer

pytestmark = pytest.mark.e2e

SCREEN = """
const b = window.dockershTerm && window.dockershTerm.buffer.active;
if (!b) return null;
const lines = [];
for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
return lines.join("\\n");
"""


def screen(driver: Any) -> str:
    return str(driver.execute_script(SCREEN) or "")


def wait_screen(driver: Any, pattern: str, timeout: float = 30) -> re.Match[str]:
    found: list[re.Match[str]] = []

    def check(d: Any) -> bool:
        match = re.search(pattern, screen(d))
        if match:
            found.append(match)
        return match is not None

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(check)
    except Exception as exc:
        raise AssertionError(f"no {pattern!r} on the terminal:\n{screen(driver)}") from exc
    return found[0]


def log_in(driver: Any, server: WebServer, name: str, password: str) -> None:
    driver.get(server.url + "/")
    WebDriverWait(driver, 20).until(expected_conditions.url_contains("/login"))
    driver.find_element(By.ID, "answer").send_keys(name)
    driver.find_element(By.ID, "submit").click()
    # The PAM conversation, as PAM words it.
    WebDriverWait(driver, 20).until(
        expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, "label"),
                                                          "Password:"))
    field = driver.find_element(By.ID, "answer")
    assert field.get_attribute("type") == "password"
    field.send_keys(password)
    driver.find_element(By.ID, "submit").click()


def type_line(driver: Any, text: str) -> None:
    driver.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea").click()
    ActionChains(driver).send_keys(text + "\n").perform()


def term_size(driver: Any) -> tuple[int, int]:
    rows, cols = driver.execute_script(
        "return [window.dockershTerm.rows, window.dockershTerm.cols];")
    return int(rows), int(cols)


def test_log_in_run_resize_log_out(web_server: Any, browser: Any, make_user: Any) -> None:
    server: WebServer = web_server()
    user = make_user(password=f"pw-{secrets.token_hex(6)}")
    driver = browser(1000, 700)
    log_in(driver, server, user.name, user.password)
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "logout"))
    wait_screen(driver, r"\$ ")
    type_line(driver, "echo web-$((6*7)) $(id -un)")
    wait_screen(driver, rf"web-42 {user.name}")
    rows, cols = term_size(driver)
    type_line(driver, "stty size")
    wait_screen(driver, rf"(?m)^{rows} {cols}\s*$")
    driver.set_window_size(700, 450)
    WebDriverWait(driver, 20).until(lambda d: term_size(d) != (rows, cols))
    new_rows, new_cols = term_size(driver)
    assert new_rows < rows and new_cols < cols
    time.sleep(0.3)  # the resize message goes ahead of the typed line; let the pty see it
    type_line(driver, "clear; stty size")
    wait_screen(driver, rf"(?m)^{new_rows} {new_cols}\s*$")
    driver.find_element(By.ID, "logout").click()
    WebDriverWait(driver, 20).until(expected_conditions.url_contains("/login"))
    driver.get(server.url + "/")
    WebDriverWait(driver, 20).until(expected_conditions.url_contains("/login"))
    cookies = {c["name"]: c for c in driver.get_cookies()}
    assert "dockersh_session" not in cookies


def test_wrong_password_is_refused(web_server: Any, browser: Any, make_user: Any) -> None:
    server: WebServer = web_server()
    user = make_user(password=f"pw-{secrets.token_hex(6)}")
    driver = browser()
    log_in(driver, server, user.name, "not-the-password")
    error = WebDriverWait(driver, 30).until(
        expected_conditions.presence_of_element_located((By.ID, "error")))
    assert error.text == "Login incorrect"
    assert "/login" in driver.current_url and not driver.find_elements(By.ID, "terminal")


def test_no_login_no_terminal(web_server: Any, browser: Any, make_user: Any) -> None:
    server: WebServer = web_server()
    driver = browser()
    driver.get(server.url + "/")
    WebDriverWait(driver, 20).until(expected_conditions.url_contains("/login"))
    # Straight to the websocket without a session: refused before any upgrade.
    outcome = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const ws = new WebSocket("wss://" + location.host + "/ws?csrf=x");
        ws.onopen = () => done("open");
        ws.onerror = () => done("refused");
    """)
    assert outcome == "refused"
    assert not driver.find_elements(By.ID, "terminal")
