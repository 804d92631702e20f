/*
 * dockersh-exec: docker mode's way in for a session without a terminal, run by the engine as the
 * exec's command, inside the user's container (mounted read-only at /usr/libexec/dockersh-exec).
 *
 * Why: through the engine's exec stream every byte is copied three times (the shim, dockerd, the
 * monitor), which held bulk transfers to ~0.55x and sshfs to ~0.4x of a plain account. The engine
 * still makes this process (its seccomp, AppArmor, cgroup, ids, no capabilities, no new
 * privileges), but the session's own stdin, stdout and stderr come from the monitor over a unix
 * socket, so the command reads and writes sshd's pipes as on a plain account.
 *
 * Usage: dockersh-exec NAME COMMAND [ARG]...  It connects to the abstract socket @NAME (which the
 * monitor bound in this container's network namespace, and which checks that the peer is this
 * exec's process), then speaks the spare's protocol from step 3 on (dockersh/enter/protocol.py):
 * GO with fds 0-2 -> STARTED (or FORK_FAILED) -> any number of KILL<n> -> EXITED<wait status>.
 * The command runs in a session of its own; a monitor that goes away leaves it a SIGHUP, as a
 * closed SSH channel would, and this process going away (killed by the user) a SIGKILL. Exit status: the command's (128 + N for a death by signal N), or 126
 * when no session was handed over. Statically linked: container images have any libc or none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int wake[2] = {-1, -1};

static void on_child(int signum) {
    int saved = errno;
    (void)signum;
    if (write(wake[1], "", 1) < 0) { /* full: a wakeup is pending anyway */ }
    errno = saved;
}

static void say(int sock, const char *tag, int number, int with_number) {
    char message[32];
    int len = with_number ? snprintf(message, sizeof message, "%s%d", tag, number)
                          : snprintf(message, sizeof message, "%s", tag);
    if (send(sock, message, (size_t)len, MSG_NOSIGNAL) < 0) { /* the monitor is gone */ }
}

/* GO and exactly three fds, else -1. */
static int receive(int sock, int fds[3]) {
    char message[8];
    union { struct cmsghdr align; char buffer[CMSG_SPACE(3 * sizeof(int))]; } control;
    struct iovec iov = {message, sizeof message};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buffer;
    msg.msg_controllen = sizeof control.buffer;
    ssize_t got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (got != 1 || message[0] != 'G' || msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC) || !c ||
        c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(3 * sizeof(int)))
        return -1;
    memcpy(fds, CMSG_DATA(c), 3 * sizeof(int));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || strlen(argv[1]) + 1 >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return 126;
    /* Not dumpable: the user's other processes cannot ptrace it to speak for it (the monitor
     * checks what it says anyway: spare.exit_code). The command is, once it execs. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    pid_t self = getpid();
    int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path + 1, argv[1], strlen(argv[1]));  /* sun_path[0] = 0: abstract */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(argv[1]));
    int fds[3];
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, len) < 0 || receive(sock, fds) < 0)
        return 126;

    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);  /* no handler runs in the child before its exec */
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        say(sock, "E", 0, 0);
        return 126;
    }
    struct sigaction action = {.sa_handler = on_child, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigaction(SIGCHLD, &action, 0);
    pid_t child = fork();
    if (child == 0) {
        signal(SIGCHLD, SIG_DFL);
        /* Killed with this process: the monitor then reports a kill, and it is one. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != self) _exit(126);
        setsid();
        for (int fd = 0; fd < 3; fd++)
            if (dup2(fds[fd], fd) < 0) _exit(126);
        sigprocmask(SIG_SETMASK, &old, 0);
        execvp(argv[2], argv + 2);
        int code = errno == ENOENT ? 127 : 126;
        dprintf(2, "dockersh: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(code);
    }
    for (int fd = 0; fd < 3; fd++) close(fds[fd]);  /* the command holds sshd's pipes alone */
    if (child < 0) {
        say(sock, "E", 0, 0);
        return 126;
    }
    say(sock, "S", 0, 0);
    sigprocmask(SIG_SETMASK, &old, 0);

    struct pollfd polled[2] = {{wake[0], POLLIN, 0}, {sock, POLLIN, 0}};
    for (;;) {
        int status;
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child) {
            say(sock, "X", status, 1);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (poll(polled, polled[1].fd < 0 ? 1 : 2, -1) < 0 && errno != EINTR) return 126;
        char drained[64];
        while (read(wake[0], drained, sizeof drained) > 0) {}
        if (polled[1].fd >= 0 && polled[1].revents) {
            char message[16] = {0};
            ssize_t got = recv(sock, message, sizeof message - 1, MSG_DONTWAIT);
            if (got > 1 && message[0] == 'K') {
                int signum = atoi(message + 1);
                if (signum > 0 && signum < NSIG) kill(child, signum);
            } else if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                kill(child, SIGHUP);  /* the monitor went away, and so did the SSH channel */
                polled[1].fd = -1;
            }
        }
    }
}
