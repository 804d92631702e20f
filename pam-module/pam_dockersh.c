/*
 * pam_dockersh: put sshd into the user's container's network before it forwards anything.
 *
 * sshd opens the PAM session in its privileged monitor, just before it forks the post-auth
 * child that performs every direct-tcpip connect (ssh -L, -D, -W) and every remote-forward
 * listen (ssh -R), and that spawns the login shell. A setns(CLONE_NEWNET) here therefore moves
 * all of sshd's forwarding into the container's network namespace: "localhost" is the
 * container's loopback, and the host's loopback and networks are out of reach, with no proxy of
 * dockersh's own in the way.
 *
 * When forwarding is off for the user, or anything goes wrong, sshd gets a network namespace of
 * its own instead (unshare: nothing in it but a loopback that is down), so forwards reach
 * nothing, and the login goes on to say what is wrong. (A failed pam_open_session would not
 * restrict the session: sshd ends every command and shell with status 254.) Only if even that
 * fails does the module fail.
 *
 * Fast path (every warm login, no process started): /run/dockersh/netns/UID (root-only) names
 * the container's init pid, start time and id, written by dockersh when it readied the
 * container; the pid is opened as a /proc/PID directory fd, which stays bound to that process,
 * its start time must be the one written (a recycled pid is another process) and its cgroups
 * must name the container id, and its ns/net is opened through the same fd ("0 0 - KEY":
 * forwarding is off, the empty namespace). Otherwise (first login,
 * restarted or recreated container) the privileged entry readies the container as a login would
 * (`dockersh netns USER`: create, start, recreate, under the user's lock) and sends the netns
 * back as a file descriptor over a socketpair.
 *
 * Only members of group dockersh get here (install.sh's pam_succeed_if line before this one).
 * Use: session required pam_dockersh.so
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#define ENTRY "/opt/dockersh/sbin/dockersh"
#define STATE_DIR "/run/dockersh/netns"
#define GLOBAL_CONFIG "/etc/dockersh/dockersh.toml"
#define READY_TIMEOUT_MS 120000 /* a first login may create the container (and pull) */
#define MAX_GROUPS 1024
#define ISOLATE -2 /* not a descriptor: "forwarding is off: a namespace of sshd's own" */

static int by_value(const void *a, const void *b) {
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
    return (x > y) - (x < y);
}

/*
 * What the decision "this user may forward into that container" depends on, besides the
 * container: the global config file's identity and the user's groups (the [groups.X] layers).
 * dockersh writes the same key (dockersh/login/forwarding.py); a change means a miss, and the
 * privileged entry decides again.
 */
static int state_key(const struct passwd *pw, char *key, size_t size) {
    struct stat st;
    gid_t groups[MAX_GROUPS];
    int n = MAX_GROUPS, used, i;

    if (stat(GLOBAL_CONFIG, &st) == 0)
        used = snprintf(key, size, "%llu:%llu:%lld:%lld%09ld:%lld%09ld",
                        (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                        (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                        (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
    else
        used = snprintf(key, size, "-");
    if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
        return -1;
    qsort(groups, (size_t)n, sizeof groups[0], by_value);
    for (i = 0; i < n && used > 0 && (size_t)used < size; i++)
        if (i == 0 || groups[i] != groups[i - 1])
            used += snprintf(key + used, size - (size_t)used, "%c%u", i ? ',' : ':',
                             (unsigned)groups[i]);
    return used > 0 && (size_t)used < size ? 0 : -1;
}

/* Read at most size-1 bytes of an fd into buf (NUL-terminated); -1 on error. */
static ssize_t read_all(int fd, char *buf, size_t size) {
    size_t got = 0;
    while (got < size - 1) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

/* The netns of the container named in the state file, or -1 (a miss, not an error). */
/* The start time (field 22 of /proc/PID/stat, clock ticks since boot) through a /proc/PID
 * directory fd, or -1. A pid and its start time name one process: a recycled pid has another. */
static long long start_time(int proc) {
    char stat[1024], *p;
    long long ticks = -1;
    int fd = openat(proc, "stat", O_RDONLY | O_CLOEXEC), i;

    if (fd < 0)
        return -1;
    if (read_all(fd, stat, sizeof stat) > 0 && (p = strrchr(stat, ')')) != NULL) {
        /* after ")": state is field 3, so the start time is the 20th space-separated field */
        for (i = 0; i < 20 && p != NULL; i++)
            p = strchr(p + 1, ' ');
        if (p != NULL)
            ticks = strtoll(p + 1, NULL, 10);
    }
    close(fd);
    return ticks;
}

static int netns_from_state(const struct passwd *pw) {
    char path[64], text[8192], cgroups[65536], id[80], key[4096], want[4096];
    long pid;
    long long started;
    int fd, proc, cg, ns = -1;

    if (state_key(pw, want, sizeof want) != 0)
        return -1;
    snprintf(path, sizeof path, STATE_DIR "/%u", (unsigned)pw->pw_uid);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (read_all(fd, text, sizeof text) <= 0 ||
        sscanf(text, "%ld %lld %79s %4095s", &pid, &started, id, key) != 4 ||
        strcmp(key, want) != 0 ||
        !((pid == 0 && strcmp(id, "-") == 0) || (pid > 1 && strlen(id) == 64))) {
        close(fd);
        return -1;
    }
    close(fd);
    if (pid == 0)
        return ISOLATE;
    snprintf(path, sizeof path, "/proc/%ld", pid);
    proc = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0)
        return -1;
    cg = start_time(proc) == started ? openat(proc, "cgroup", O_RDONLY | O_CLOEXEC) : -1;
    if (cg >= 0) {
        if (read_all(cg, cgroups, sizeof cgroups) > 0 && strstr(cgroups, id) != NULL)
            ns = openat(proc, "ns/net", O_RDONLY | O_CLOEXEC);
        close(cg);
    }
    close(proc);
    return ns;
}

/* Ask the privileged entry to ready the container and send its netns back; -1 on failure. */
static int netns_from_dockersh(pam_handle_t *pamh, const char *user) {
    int sv[2], ns = -1, status;
    pid_t child;
    char byte;
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof control};
    struct pollfd pfd;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    child = fork();
    if (child < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (child == 0) {
        char *const argv[] = {"dockersh", "netns", (char *)user, NULL};
        char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              NULL};
        int null = open("/dev/null", O_RDWR);
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
            dup2(sv[1], 3) < 0)
            _exit(125);
        close_range(4, ~0U, 0); /* none of sshd's descriptors (the client's socket) */
        execve(ENTRY, argv, envp);
        _exit(125);
    }
    close(sv[1]);
    pfd.fd = sv[0];
    pfd.events = POLLIN;
    if (poll(&pfd, 1, READY_TIMEOUT_MS) == 1 && recvmsg(sv[0], &msg, MSG_CMSG_CLOEXEC) == 1) {
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (byte == 'N' && c != NULL && c->cmsg_level == SOL_SOCKET &&
            c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&ns, CMSG_DATA(c), sizeof(int));
        else if (byte == 'I' && c == NULL)
            ns = ISOLATE;
    }
    close(sv[0]);
    if (ns == -1)
        kill(child, SIGKILL); /* timed out, or said nothing: it must not go on alone */
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (ns != -1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        if (ns >= 0)
            close(ns);
        ns = -1;
    }
    if (ns == -1)
        pam_syslog(pamh, LOG_ERR, "dockersh netns %s failed; no forwarding", user);
    return ns;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    const char *user = NULL;
    struct passwd *pw;
    int ns;

    (void)flags;
    (void)argc;
    (void)argv;
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL ||
        (pw = getpwnam(user)) == NULL || pw->pw_uid == 0)
        return PAM_SESSION_ERR;
    ns = netns_from_state(pw);
    if (ns == -1)
        ns = netns_from_dockersh(pamh, user);
    if (ns >= 0) {
        int joined = setns(ns, CLONE_NEWNET);
        close(ns);
        /* Said to the login (sshd passes the PAM environment on): it refuses to run without. */
        if (joined == 0)
            return pam_putenv(pamh, "DOCKERSH_NET=container") == PAM_SUCCESS ? PAM_SUCCESS
                                                                           : PAM_SESSION_ERR;
        pam_syslog(pamh, LOG_ERR, "setns into %s's container network: %m", user);
    }
    /* Forwarding off, or something failed: never the host's network. */
    if (unshare(CLONE_NEWNET) == 0)
        return pam_putenv(pamh, "DOCKERSH_NET=isolated") == PAM_SUCCESS ? PAM_SUCCESS
                                                                       : PAM_SESSION_ERR;
    pam_syslog(pamh, LOG_ERR, "a network namespace for %s: %m", user);
    return PAM_SESSION_ERR;
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}
