"""A PAM transaction whose conversation is relayed: each prompt goes to a callback.

python-pam's own ``authenticate`` answers every hidden prompt with one password; a web login
must show the real conversation (a second factor asks its own question). This uses
python-pam's ctypes bindings of libpam with a conversation function of our own. Root only (the
broker): pam_unix reads /etc/shadow.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from pam import __internals as pamlib

SERVICE = "dockersh"
ECHO_OFF, ECHO_ON, ERROR_MSG, TEXT_INFO = (pamlib.PAM_PROMPT_ECHO_OFF, pamlib.PAM_PROMPT_ECHO_ON,
                                           pamlib.PAM_ERROR_MSG, pamlib.PAM_TEXT_INFO)

#: ask(style, text) -> the answer to a prompt (None: no answer, the login fails); for
#: ERROR_MSG and TEXT_INFO the return value is ignored.
Ask = Callable[[int, str], "str | None"]


def authenticate(user: str, ask: Ask, rhost: str, service: str = SERVICE) -> bool:
    """pam_authenticate then pam_acct_mgmt for ``user``; no pam_setcred (that would run
    credential modules in this root process). ``rhost`` becomes PAM_RHOST (logs, pam_access)."""
    if "\0" in user or "\0" in rhost:
        return False
    libs = pamlib.PamAuthenticator()  # loads libpam once, shared by every thread
    calloc = libs.calloc

    @pamlib.conv_func  # type: ignore[untyped-decorator]
    def conversation(count: int, messages: object, p_response: object, _data: object) -> int:
        responses = ctypes.cast(calloc(count, ctypes.sizeof(pamlib.PamResponse)),
                                ctypes.POINTER(pamlib.PamResponse))
        p_response[0] = responses  # type: ignore[index]
        for i in range(count):
            message = messages[i].contents  # type: ignore[index]
            text = (message.msg or b"").decode("utf-8", "replace")
            answer = ask(message.msg_style, text)
            if message.msg_style not in (ECHO_OFF, ECHO_ON):
                continue
            if answer is None or "\0" in answer:
                return int(pamlib.PAM_CONV_ERR)  # libpam frees what was allocated
            data = answer.encode()
            buffer = calloc(len(data) + 1, 1)
            ctypes.memmove(buffer, data, len(data))
            responses[i].resp = buffer
            responses[i].resp_retcode = 0
        return int(pamlib.PAM_SUCCESS)

    conv = pamlib.PamConv(conversation, None)
    handle = pamlib.PamHandle()
    if libs.pam_start(service.encode(), user.encode(), ctypes.byref(conv),
                      ctypes.byref(handle)) != pamlib.PAM_SUCCESS:
        return False
    status = int(pamlib.PAM_SYSTEM_ERR)
    try:
        libs.pam_set_item(handle, pamlib.PAM_RHOST, ctypes.c_char_p(rhost.encode()))
        # Debian's common-auth lets an account without a password in (nullok): not here.
        status = libs.pam_authenticate(handle, pamlib.PAM_DISALLOW_NULL_AUTHTOK)
        if status == pamlib.PAM_SUCCESS:
            status = libs.pam_acct_mgmt(handle, pamlib.PAM_DISALLOW_NULL_AUTHTOK)
    finally:
        libs.pam_end(handle, status)
    return bool(status == pamlib.PAM_SUCCESS)
