/*
 * dockersh login shell front, installed as /usr/local/bin/dockersh (root-owned, 0755).
 *
 * It runs on the host as the user, before anything is inside the container, with an environment
 * the user may have written (~/.pam_environment, a client's variables). So it is linked
 * statically: no dynamic loader runs, and LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH mean nothing to
 * it. It reads no file, calls no NSS, iconv or locale function, and builds a fresh environment
 * from a fixed list of names before it execs `/usr/bin/sudo -n -- ENTRY ARGS` (root: the entry
 * directly). Values that sudo's env_check would drop (a '/' or '%' in a locale or terminal name,
 * a TZ path outside the zoneinfo directory) are dropped here already, so that sudo's own startup
 * never sees them either. sudo is the privilege boundary (/etc/sudoers.d/dockersh); the
 * privileged side trusts only SUDO_UID. Keep it this small: every login starts here.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#define SUDO "/usr/bin/sudo"
#define ENTRY "/opt/dockersh/sbin/dockersh"
#define ZONEINFO "/usr/share/zoneinfo/"
#define MAX_KEPT 64
/* What root's own commands get as PATH (sudo sets its secure_path for everyone else). */
#define ROOT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

/* Names passed as they are (the session's own variables; GIT_PROTOCOL for git over ssh). */
static const char *const passed[] = {
    "SSH_ORIGINAL_COMMAND", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "GIT_PROTOCOL",
    /* sshd's agent socket and ExposeAuthInfo file, both checked by the privileged side; what
     * pam_dockersh.so did with sshd's network (the login refuses to run without it) */
    "SSH_AUTH_SOCK", "SSH_USER_AUTH", "DOCKERSH_NET", 0,
};
/* Names whose value must look like a name, not a path or a format (sudo's env_check). */
static const char *const checked[] = {"TERM", "LANG", "LANGUAGE", "COLORTERM", 0};

static int named(const char *entry, size_t len, const char *const *names) {
    for (; *names; names++)
        if (strlen(*names) == len && memcmp(entry, *names, len) == 0) return 1;
    return 0;
}

static int locale_category(const char *entry, size_t len) {
    if (len <= 3 || memcmp(entry, "LC_", 3) != 0) return 0;
    for (size_t i = 3; i < len; i++)
        if (!((entry[i] >= 'A' && entry[i] <= 'Z') || entry[i] == '_')) return 0;
    return 1;
}

static int tz_ok(const char *value) {
    if (*value == ':') value++;
    if (strstr(value, "..") || strchr(value, '%')) return 0;
    return *value != '/' || strncmp(value, ZONEINFO, sizeof ZONEINFO - 1) == 0;
}

/* Whether to keep this NAME=VALUE: in the first pass the fixed names, in the second the LC_*
 * categories (so that a client's many LC_ variables never crowd out the session's own). */
static int keep(const char *entry, int pass) {
    const char *eq = strchr(entry, '=');
    if (!eq) return 0;
    size_t len = (size_t)(eq - entry);
    const char *value = eq + 1;
    if (pass == 1) return locale_category(entry, len) && !strpbrk(value, "/%");
    if (named(entry, len, passed)) return 1;
    if (len == 2 && memcmp(entry, "TZ", 2) == 0) return tz_ok(value);
    return named(entry, len, checked) && !strpbrk(value, "/%");
}

/* Is a variable of this name already in env[0..n)? The first one wins, as getenv's does. */
static int seen(char **env, int n, const char *entry) {
    size_t len = (size_t)(strchr(entry, '=') - entry) + 1;
    for (int i = 0; i < n; i++)
        if (strncmp(env[i], entry, len) == 0) return 1;
    return 0;
}

static void fail(const char *what) {
    static const char digits[] = "0123456789";
    char num[12];
    int n = errno, i = sizeof num;
    do num[--i] = digits[n % 10]; while ((n /= 10) && i > 0);
    (void)!write(2, "dockersh: cannot run ", 21);
    (void)!write(2, what, strlen(what));
    (void)!write(2, " (errno ", 8);
    (void)!write(2, num + i, sizeof num - (size_t)i);
    (void)!write(2, ")\n", 2);
    _exit(125);
}

int main(int argc, char **argv) {
    char *env[MAX_KEPT + 2];
    int n = 0;
    int root = geteuid() == 0;
    if (root) env[n++] = ROOT_PATH;
    for (int pass = 0; pass < 2; pass++)
        for (char **ep = environ; ep && *ep && n < MAX_KEPT; ep++)
            if (keep(*ep, pass) && !seen(env, n, *ep)) env[n++] = *ep;
    env[n] = 0;

    /* argv[0] of an interactive login is "-dockersh": the entry needs only the arguments. */
    char *args[argc + 4];
    int a = 0;
    if (!root) {
        args[a++] = SUDO;
        args[a++] = "-n";
        args[a++] = "--";
    }
    args[a++] = ENTRY;
    for (int i = 1; i < argc; i++) args[a++] = argv[i];
    args[a] = 0;
    execve(args[0], args, env);
    fail(args[0]);
    return 125;
}
