"""``dockersh web``: an HTTPS web terminal and docker-ssh's HTTP API into each user's container.

Two processes (SECURITY.md, "The web terminal"): a root broker (``broker``: PAM conversations,
starting ``dockersh --user NAME`` on a new pty) and an unprivileged server (``server``, ``api``:
HTTPS, cookies, relaying bytes) that receives pty masters over a unix socket. Never imported on
the login path: aiohttp is the optional extra ``web``.
"""
