"""The HTML of the login conversation and the terminal page (no template engine: three pages)."""

from __future__ import annotations

from html import escape

HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/style.css">{extra}</head>
"""


def page(title: str, body: str, extra: str = "") -> str:
    return HEAD.format(title=escape(title), extra=extra) + f"<body>{body}</body></html>\n"


def notes(messages: list[str], error: str = "") -> str:
    out = "".join(f'<p class="note">{escape(m)}</p>' for m in messages if m)
    return out + (f'<p class="error" id="error">{escape(error)}</p>' if error else "")


def login(csrf: str, error: str = "", messages: list[str] | None = None) -> str:
    """The first step: who. The rest of the conversation is PAM's (``prompt``)."""
    return page("dockersh: log in", f"""<main class="login"><h1>dockersh</h1>
{notes(messages or [], error)}
<form method="post" action="/login" autocomplete="off">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<label for="answer">Login:</label>
<input id="answer" name="user" autofocus autocapitalize="none" spellcheck="false" required>
<button id="submit" type="submit">Next</button></form></main>""")


def prompt(csrf: str, conv: str, user: str, text: str, echo: bool,
           messages: list[str]) -> str:
    """One PAM prompt, as PAM wrote it (``Password:``, ``Verification code:``, ...)."""
    kind = "text" if echo else "password"
    return page("dockersh: log in", f"""<main class="login"><h1>dockersh</h1>
<p class="who">{escape(user)}</p>{notes(messages)}
<form method="post" action="/login/answer" autocomplete="off">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<input type="hidden" name="conv" value="{escape(conv)}">
<label for="answer">{escape(text.strip() or "Answer:")}</label>
<input id="answer" name="answer" type="{kind}" autofocus>
<button id="submit" type="submit">Next</button></form></main>""")


def terminal(user: str, csrf: str) -> str:
    return page(f"{user}: dockersh", f"""<header><span id="who">{escape(user)}</span>
<span id="status"></span>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{escape(csrf)}">
<button id="logout" type="submit">Log out</button></form></header>
<div id="terminal"></div>
<script src="/static/vendor/xterm.js"></script><script src="/static/vendor/addon-fit.js"></script>
<script src="/static/terminal.js"></script>""",
                extra=f'<meta name="csrf" content="{escape(csrf)}">'
                      '<link rel="stylesheet" href="/static/vendor/xterm.css">')
