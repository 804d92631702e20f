"""Every path, name and program dockersh shares with install.sh, the tests and itself.

The contract in docs/DESIGN.md ("Paths"), in one place. No imports: any module may use it,
the warm login path included.
"""

#: The group whose members dockersh serves; the sudo rule and sshd's Match block name it too.
GROUP = "dockersh"
#: The login shell front, run by sshd as the user (statically linked: see bin/).
FRONT = "/usr/local/bin/dockersh"
#: The privileged entry the front execs through sudo.
ENTRY = "/opt/dockersh/sbin/dockersh"
#: docker mode's exec helper (static, from bin/dockersh-exec.c), bound read-only into every
#: container dockersh makes at EXEC_HELPER_INSIDE: a session without a terminal gets sshd's own
#: stdin, stdout and stderr through it instead of the engine's stream (backend/docker/handover).
EXEC_HELPER = "/opt/dockersh/libexec/dockersh-exec"
EXEC_HELPER_INSIDE = "/usr/libexec/dockersh-exec"
GLOBAL_CONFIG = "/etc/dockersh/dockersh.toml"
#: A user's own config file, in their home.
USER_FILE = ".dockersh.toml"

SUDOERS = "/etc/sudoers.d/dockersh"
#: What sshd sets for every session of a plain account, given to every session as sshd set
#: them (SSH_TTY: the session's terminal as named inside the container, never the variable's
#: value), and git's protocol request, which a client sends when sshd's AcceptEnv lets it.
SSH_VARIABLES = ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "GIT_PROTOCOL")
#: Everything the front passes on and sudo keeps (env_keep in etc/sudoers.d/dockersh): nothing
#: else of the SSH session's environment reaches the privileged side. bin/dockersh-front.c and
#: SECURITY.md's table ("The sudo environment") list the same names (a unit test compares).
SESSION_VARIABLES = ("TERM", "LANG", "LANGUAGE", "LC_*", "TZ", "COLORTERM",
                     "SSH_ORIGINAL_COMMAND", *SSH_VARIABLES,
                     # sshd's files in the host's /tmp, each checked before use
                     # (login/agent.host_socket, login/target.keys_used)
                     "SSH_USER_AUTH", "SSH_AUTH_SOCK",
                     # pam_dockersh.so's word on sshd's network (login/session.check_network)
                     "DOCKERSH_NET")
PAM_DIR = "/etc/pam.d"
PAM_SERVICE = f"{PAM_DIR}/dockersh"
#: sshd's PAM stack, where install.sh puts its block before pam_env's user_readenv=1 line.
PAM_SSHD = f"{PAM_DIR}/sshd"
#: Skips systemd's user manager (user@UID.service) for members of the group.
USER_MANAGER_DROPIN = "/etc/systemd/system/user@.service.d/dockersh.conf"
SSHD = "/usr/sbin/sshd"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/dockersh.conf"
SHELLS = "/etc/shells"
VISUDO = "/usr/sbin/visudo"
USERMOD = "/usr/sbin/usermod"
GPASSWD = "/usr/bin/gpasswd"
NOLOGIN = "/usr/sbin/nologin"

#: Root's runtime state (0700, gone at reboot): locks, the plan cache, probes, spares, seccomp.
RUN_DIR = "/run/dockersh"
LOCK_DIR = f"{RUN_DIR}/locks"
PLAN_DIR = f"{RUN_DIR}/plans"
#: The global config's TOML, parsed, with the identity of the file it came from.
PARSED_CONFIG = f"{RUN_DIR}/config.parsed"
PROBE_DIR = f"{RUN_DIR}/probes"
#: nsenter mode's spare sockets and their locks, by container id.
SPARE_DIR = f"{RUN_DIR}/spares"
#: nsenter mode's copy of each container's seccomp filter, by container id and start time.
SECCOMP_DIR = f"{RUN_DIR}/seccomp"
#: The container a member's sshd joins for forwarding, by uid (pam_dockersh.so reads it).
NETNS_DIR = f"{RUN_DIR}/netns"
#: sshd's ChrootDirectory for the group (the drop-in): empty on the host, an allow-list of the
#: host in each SSH connection's own mount namespace (pam_dockersh.c builds it, login/jail.py
#: leaves it).
JAIL = f"{RUN_DIR}/jail"
#: Session recordings, ``SESSION.cast`` (asciicast v2), root-only: the default of
#: ``[audit] sessions_dir``.
SESSIONS_DIR = "/var/log/dockersh/sessions"
#: The generated passwd and group files, bound read-only into each container (0755).
STATE_DIR = "/var/lib/dockersh"
#: The seccomp profile of Podman containers (backend/podman/seccomp.py), read by Podman.
PODMAN_SECCOMP = f"{STATE_DIR}/podman-seccomp.json"
