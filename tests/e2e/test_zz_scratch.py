from __future__ import annotations
import asyncio, time
from collections.abc import Callable
import asyncssh, pytest
from support.sshd import HOST, SshdFactory
from support.users import UserFactory

async def go(port, user, cmd, sig):
    async with asyncssh.connect(HOST, port, username=user.name, client_keys=[str(user.key)],
                                known_hosts=None) as conn:
        proc = await conn.create_process(cmd)
        line = await proc.stdout.readline()
        await asyncio.sleep(0.5)
        if sig:
            proc.send_signal(sig)
        await asyncio.wait_for(proc.wait(check=False), 20)
        return line, proc.exit_status, proc.exit_signal, await proc.stdout.read()

@pytest.mark.parametrize("m", ["docker", "nsenter"])
@pytest.mark.parametrize("sig", ["INT", "TERM", "USR1", "KILL"])
def test_sig(session_config, sshd: SshdFactory, make_user: UserFactory, m, sig):
    session_config(m)
    server = sshd()
    user, plain = make_user(), make_user(shell="/bin/bash", in_dockersh=False)
    for who in (plain, user):
        r = asyncio.run(go(server.port, who, "echo up; trap 'echo got-usr1; exit 3' USR1; sleep 5 & wait", sig))
        print("\nRESULT", m, sig, "plain" if who is plain else "dsh", r)
    for who in (plain, user):
        r = asyncio.run(go(server.port, who, "echo up; kill -TERM $$", None))
        print("\nSELFKILL", m, "plain" if who is plain else "dsh", r)
