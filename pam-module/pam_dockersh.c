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
 * Then the jail (unix-socket forwards, ssh -L PORT:/path): the drop-in chroots sshd's
 * post-auth child, which connect()s every direct-streamlocal forward and execs the login
 * shell, into JAIL. On the host that is an empty root-owned directory; here sshd's monitor
 * gets a mount namespace of its own (a slave of the host's: nothing mounted here reaches the
 * host) and mounts in it, on JAIL, an allow-list of what the chain to the privileged entry
 * needs: read-only, non-recursive binds of /usr, /etc and /opt/dockersh (what a host path
 * names there has no sockets: no mount below them comes along), the merged-/usr links, six
 * device nodes and /dev/pts, a root-owned /run (only the file an /etc/resolv.conf link into
 * /run names), a private /tmp (where sshd makes the agent socket and the ExposeAuthInfo file)
 * and, when the user forwards into their own container and it binds the host's home, that
 * home (a socket made in there is a socket in the container). No /proc: /proc/PID/root leads
 * out of any chroot. So a forward to a path reaches the user's home and this connection's
 * /tmp, and nothing else of the host. The privileged entry leaves the jail first thing
 * (dockersh/login/jail.py); if it cannot be built, the mount is undone and sshd chroots into
 * the empty directory: the shell cannot run and forwards reach nothing.
 *
 * Option `nojail`: no jail (and no mount namespace). install.sh sets it, with the drop-in's
 * `ChrootDirectory none` and `AllowStreamLocalForwarding no`, on a host whose passwd, group,
 * shadow, initgroups or sudoers come from sssd, LDAP or winbind: their sockets are not in the
 * jail, so sudo there could not resolve those users. Any other option fails the session.
 *
 * The session fails too when the member's login shell is neither the front nor dash (which
 * reads no file for `dash -c`, for ForceCommand): sshd would run it on the host, and a shell
 * like bash reads the user's files (~/.bashrc) first. doctor says so for the accounts it can
 * list; a directory (sssd, LDAP) that hands members another shell is caught here. Both checks
 * come after the network step, so even a failed session never forwards in the host's network.
 *
 * Only members of group dockersh get here (install.sh's pam_succeed_if line before this one).
 * Use: session required pam_dockersh.so [nojail]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#define ENTRY "/opt/dockersh/sbin/dockersh"
#define FRONT "/usr/local/bin/dockersh" /* the login shell install.sh and enroll set */
#define STATE_DIR "/run/dockersh/netns"
#define RUN_DIR "/run/dockersh"
#define JAIL RUN_DIR "/jail" /* also in dockersh/paths.py and the sshd drop-in */
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

static int netns_from_state(const struct passwd *pw, int *home) {
    char path[64], text[8192], cgroups[65536], id[80], key[4096], want[4096], shared[2];
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
        sscanf(text, "%ld %lld %79s %4095s %1s", &pid, &started, id, key, shared) != 5 ||
        strcmp(key, want) != 0 ||
        !((pid == 0 && strcmp(id, "-") == 0) || (pid > 1 && strlen(id) == 64))) {
        close(fd);
        return -1;
    }
    close(fd);
    *home = shared[0] == 'H';
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
static int netns_from_dockersh(pam_handle_t *pamh, const char *user, int *home) {
    int sv[2], ns = -1, status;
    pid_t child;
    char said[2];
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = said, .iov_len = sizeof said};
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
    /* "N" and the netns, or "I" (forwarding off); then "H" when the container shares the home */
    if (poll(&pfd, 1, READY_TIMEOUT_MS) == 1 && recvmsg(sv[0], &msg, MSG_CMSG_CLOEXEC) == 2) {
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (said[0] == 'N' && c != NULL && c->cmsg_level == SOL_SOCKET &&
            c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&ns, CMSG_DATA(c), sizeof(int));
        else if (said[0] == 'I' && c == NULL)
            ns = ISOLATE;
        *home = said[1] == 'H';
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

/* Make the mount point PATH under the jail (a directory, or an empty file for a device); its
 * full path in AT (PATH_MAX bytes). */
static int jail_point(const char *path, int directory, char *at) {
    int fd;

    if (snprintf(at, PATH_MAX, JAIL "%s", path) >= PATH_MAX)
        return -1;
    if (directory)
        return mkdir(at, 0755) == 0 || errno == EEXIST ? 0 : -1;
    fd = open(at, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    return fd >= 0 ? close(fd) : -1;
}

/* The mount flags a bind of SOURCE keeps when made read-only (a remount sets them all). */
static unsigned long kept_flags(const char *source) {
    struct statvfs sv;
    unsigned long flags = 0;

    if (statvfs(source, &sv) != 0)
        return MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (sv.f_flag & ST_NOSUID)
        flags |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        flags |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        flags |= MS_NOEXEC;
    return flags;
}

/* Bind SOURCE (a path, or /proc/self/fd/N) at JAIL/WHERE, not recursively, with FLAGS added. */
static int jail_bind(const char *source, const char *where, int directory, unsigned long flags) {
    char at[PATH_MAX];

    if (jail_point(where, directory, at) != 0 || mount(source, at, NULL, MS_BIND, NULL) != 0)
        return -1;
    if (mount(NULL, at, NULL, MS_REMOUNT | MS_BIND | flags | kept_flags(source), NULL) == 0)
        return 0;
    umount2(at, MNT_DETACH); /* never left with the source's own flags */
    return -1;
}

/* A tmpfs of its own at JAIL/WHERE. */
static int jail_tmpfs(const char *where, const char *options) {
    char at[PATH_MAX];

    if (jail_point(where, 1, at) != 0)
        return -1;
    return mount("tmpfs", at, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options);
}

/* The directories above PATH, made in the jail. */
static int jail_parents(const char *path) {
    char at[PATH_MAX], made[PATH_MAX];
    size_t i;

    if (snprintf(at, sizeof at, "%s", path) >= (int)sizeof at)
        return -1;
    for (i = 1; at[i]; i++)
        if (at[i] == '/') {
            at[i] = '\0';
            if (jail_point(at, 1, made) != 0)
                return -1;
            at[i] = '/';
        }
    return 0;
}

/* /etc/resolv.conf may be a link into /run (resolvconf, systemd-resolved, NetworkManager): the
 * file it names, read-only, so that sshd resolves -L/-W/-D names as on the host. Nothing else
 * of /run: only a root-owned regular file. */
static int jail_resolver(void) {
    char target[PATH_MAX];
    struct stat st;

    if (lstat("/etc/resolv.conf", &st) != 0 || !S_ISLNK(st.st_mode) ||
        realpath("/etc/resolv.conf", target) == NULL || strncmp(target, "/run/", 5) != 0 ||
        stat(target, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0)
        return 0;
    if (jail_parents(target) != 0)
        return -1;
    return jail_bind(target, target, 0, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

/* The user's home at its own path, as the container has it: the directory the user owns, opened
 * without following a link in its last component, bound through that descriptor. Not a path
 * the jail itself uses. Anything wrong with it costs the session its unix-socket forwards, not
 * the login. */
static void jail_home(pam_handle_t *pamh, const struct passwd *pw) {
    static const char *const taken[] = {"/usr", "/etc", "/opt", "/dev", "/run", "/tmp", "/proc",
                                        "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                                        NULL};
    const char *home = pw->pw_dir;
    char source[64], canonical[PATH_MAX];
    const char *const *t;
    struct stat st;
    int fd, status;

    /* Only a canonical path: "//usr/x" or "/home/u/" would slip past the checks below. */
    if (home == NULL || home[0] != '/' || strlen(home) < 2 ||
        strlen(home) >= PATH_MAX - sizeof JAIL)
        goto refused;
    if (realpath(home, canonical) == NULL) {
        if (errno == ENOENT)
            return;
        goto refused;
    }
    if (strcmp(canonical, home) != 0)
        goto refused;
    for (t = taken; *t; t++)
        if (strncmp(home, *t, strlen(*t)) == 0 && (home[strlen(*t)] == '/' || !home[strlen(*t)]))
            goto refused;
    /* Not following a link in its last component (root's bind would follow it anywhere) */
    fd = open(home, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return;
    if (fd < 0)
        goto refused;
    if (fstat(fd, &st) != 0 || st.st_uid != pw->pw_uid || jail_parents(home) != 0) {
        close(fd);
        goto refused;
    }
    snprintf(source, sizeof source, "/proc/self/fd/%d", fd);
    /* Read-only: a socket's connect() needs no write access to its mount, and nothing here
     * writes the home. */
    status = jail_bind(source, home, 1, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
    close(fd);
    if (status == 0)
        return;
refused:
    pam_syslog(pamh, LOG_WARNING, "the home of %s is not put in the jail (%m): no unix-socket "
               "forwards", pw->pw_name);
}

/* A directory made here, not a link, root's and writable by nobody else (sshd checks too). */
static int root_directory(const char *path, mode_t mode) {
    struct stat st;

    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return -1;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 &&
                   (st.st_mode & 022) == 0
               ? 0
               : -1;
}

static int build_jail(pam_handle_t *pamh, const struct passwd *pw, int with_home) {
    static const char *const devices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                          "/dev/urandom", "/dev/tty", NULL};
    static const char *const merged[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                                         NULL};
    const char *const *p;
    char link[PATH_MAX], at[PATH_MAX];
    struct stat st;
    ssize_t n;

    if (root_directory(RUN_DIR, 0700) != 0 || root_directory(JAIL, 0755) != 0 ||
        unshare(CLONE_NEWNS) != 0) {
        pam_syslog(pamh, LOG_ERR, "a mount namespace for the jail of %s: %m", pw->pw_name);
        return -1; /* still the host's namespace: nothing to undo */
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0 ||
        mount("tmpfs", JAIL, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755,uid=0,gid=0,size=64k,nr_inodes=256") != 0)
        goto failed;
    if (jail_bind("/usr", "/usr", 1, MS_RDONLY) != 0 ||
        jail_bind("/etc", "/etc", 1, MS_RDONLY) != 0 || jail_point("/opt", 1, at) != 0 ||
        jail_bind("/opt/dockersh", "/opt/dockersh", 1, MS_RDONLY) != 0)
        goto failed;
    for (p = merged; *p; p++) {
        if (lstat(*p, &st) != 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            n = readlink(*p, link, sizeof link - 1);
            if (n < 0 || snprintf(at, sizeof at, JAIL "%s", *p) >= (int)sizeof at)
                goto failed;
            link[n] = '\0';
            if (symlink(link, at) != 0)
                goto failed;
        } else if (S_ISDIR(st.st_mode) && jail_bind(*p, *p, 1, MS_RDONLY) != 0)
            goto failed;
    }
    if (jail_point("/dev", 1, at) != 0 ||
        jail_bind("/dev/pts", "/dev/pts", 1, MS_NOSUID | MS_NOEXEC) != 0)
        goto failed;
    for (p = devices; *p; p++)
        if (jail_bind(*p, *p, 0, MS_NOSUID | MS_NOEXEC) != 0)
            goto failed;
    if (jail_tmpfs("/run", "mode=0755,uid=0,gid=0,size=1m") != 0 || jail_resolver() != 0 ||
        jail_tmpfs("/tmp", "mode=1777,uid=0,gid=0,size=1m,nr_inodes=1024") != 0)
        goto failed;
    if (with_home)
        jail_home(pamh, pw);
    /* Complete: from now on no mount the host makes (below /usr, /etc, the home) comes in. */
    if (mount(NULL, JAIL, NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
        mount(NULL, JAIL, NULL,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
        return 0;
failed:
    pam_syslog(pamh, LOG_ERR, "the jail for %s: %m", pw->pw_name);
    umount2(JAIL, MNT_DETACH); /* sshd chroots into the empty directory: nothing runs */
    return -1;
}

/* The front, or dash (with ForceCommand; doctor checks that part). */
static int safe_shell(const char *shell) {
    char real[PATH_MAX];

    if (strcmp(shell, FRONT) == 0)
        return 1;
    return realpath(shell, real) != NULL &&
           (strcmp(real, "/usr/bin/dash") == 0 || strcmp(real, "/bin/dash") == 0);
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    const char *user = NULL;
    struct passwd *pw;
    int ns, joined = 0, home = 0, jail = 1, bad_option = 0;

    (void)flags;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "nojail") == 0)
            jail = 0;
        else {
            pam_syslog(pamh, LOG_ERR, "unknown option %s", argv[i]);
            bad_option = 1;
        }
    }
    if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL ||
        (pw = getpwnam(user)) == NULL || pw->pw_uid == 0)
        return PAM_SESSION_ERR;
    ns = netns_from_state(pw, &home);
    if (ns == -1)
        ns = netns_from_dockersh(pamh, user, &home);
    if (ns >= 0) {
        joined = setns(ns, CLONE_NEWNET) == 0;
        close(ns);
        if (!joined)
            pam_syslog(pamh, LOG_ERR, "setns into %s's container network: %m", user);
    }
    /* Forwarding off, or something failed: never the host's network. */
    if (!joined && unshare(CLONE_NEWNET) != 0) {
        pam_syslog(pamh, LOG_ERR, "a network namespace for %s: %m", user);
        return PAM_SESSION_ERR;
    }
    if (bad_option)
        return PAM_SESSION_ERR;
    if (!safe_shell(pw->pw_shell)) {
        pam_syslog(pamh, LOG_ERR, "%s's login shell %s is not %s (or dash with ForceCommand): "
                   "refused", user, pw->pw_shell, FRONT);
        return PAM_SESSION_ERR;
    }
    /* The home (unix-socket forwards) only with the container's network and the container's
     * own bind of it. */
    if (jail && build_jail(pamh, pw, joined && home) != 0)
        return PAM_SESSION_ERR;
    /* Said to the login (sshd passes the PAM environment on): it refuses to run without. */
    return pam_putenv(pamh, joined ? "DOCKERSH_NET=container" : "DOCKERSH_NET=isolated") ==
                   PAM_SUCCESS
               ? PAM_SUCCESS
               : PAM_SESSION_ERR;
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)pamh;
    (void)flags;
    (void)argc;
    (void)argv;
    return PAM_SUCCESS;
}
