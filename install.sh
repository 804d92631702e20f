#!/bin/bash
# Install dockersh on this host (Debian/Ubuntu), or remove it. Run as root; non-interactive and
# idempotent: a second run changes only what differs. Paths follow docs/DESIGN.md.
set -Eeuo pipefail
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive

src=$(cd "$(dirname "$0")" && pwd -P)
prefix=/opt/dockersh
venv=$prefix/venv
entry=$prefix/sbin/dockersh
front=/usr/local/bin/dockersh
exec_helper=$prefix/libexec/dockersh-exec
group=dockersh
image=dockersh-session:latest
demo_user=dockersh-demo
sudoers=/etc/sudoers.d/dockersh
sshd_dropin=/etc/ssh/sshd_config.d/dockersh.conf
sshd_include='Include /etc/ssh/sshd_config.d/*.conf'
units=(dockersh-gc.service dockersh-gc.timer dockersh-web.service)
pam_sshd=/etc/pam.d/sshd
user_manager_dropin=/etc/systemd/system/user@.service.d/dockersh.conf
web_user=dockersh-web
web_dir=/etc/dockersh/web
podman_socket=/run/podman/podman.sock
# The engine's CLI: docker, or podman with --engine podman (or, for --purge, a config that
# selects Podman); engine_given: --engine was given.
cli=docker
engine_given=

usage() {
    cat <<EOF
usage: $0 [--engine docker|podman] [--rebuild-image] [--demo]
       $0 --uninstall [--purge [--engine docker|podman]]

Installs dockersh: the login shell $front, the privileged entry $entry
(a virtualenv of the system Python), group $group, sudoers/PAM/sshd drop-ins, state and
log directories, and the session image $image (built from the Dockerfile when missing).

  --engine podman  run the containers with rootful Podman (its API service on
                   $podman_socket) instead of Docker; a new config selects it
  --rebuild-image  build $image even when it exists
  --demo           then create user $demo_user and run a command in its container
  --uninstall      remove what install.sh installed; keeps /etc/dockersh/dockersh.toml,
                   group $group, the audit logs, containers, the image and users' homes
  --purge          with --uninstall: also remove those (never users or their homes), from
                   the engine the config selects (or --engine's)
  -h, --help       this text
EOF
}

# The terminal gets one line per step done (fd 3) and errors (fd 4); once open_log has run, the
# full output of every command (apt, debootstrap, the image build, pip) goes to $log.
log=/var/log/dockersh/install.log
logging=
exec 3>&1 4>&2
say() {
    printf 'install.sh: %s\n' "$*" >&3
    [ -z "$logging" ] || printf 'install.sh: %s\n' "$*"
}
die() {
    [ -z "$logging" ] || printf 'install.sh: error: %s\n' "$*"
    printf 'install.sh: error: %s%s\n' "$*" "${logging:+ (the full log: $log)}" >&4
    exit 1
}

systemd_booted() { [ -d /run/systemd/system ]; }

apt_updated=no
apt_install() {
    if [ "$apt_updated" = no ]; then
        apt-get update -q
        apt_updated=yes
    fi
    # needrestart (Ubuntu) would ask or draw progress bars after every install: not here.
    NEEDRESTART_SUSPEND=1 apt-get install -y -q "$@"
    say "installed package(s): $*"
}

# put_file MODE SRC DEST: make DEST a root-owned copy of SRC with MODE; says what it did and
# sets $changed to yes or no.
changed=no
put_file() {
    local mode=$1 from=$2 dest=$3
    if cmp -s "$from" "$dest" && [ "$(stat -c '%a %u %g' "$dest")" = "$mode 0 0" ]; then
        changed=no
        say "unchanged $dest"
    else
        install -D -o root -g root -m "$mode" "$from" "$dest"
        changed=yes
        say "installed $dest"
    fi
}

# remove PATH...: delete files that exist and say so.
remove() {
    local p
    for p in "$@"; do
        if [ -e "$p" ] || [ -L "$p" ]; then
            rm -rf -- "$p"
            say "removed $p"
        fi
    done
}

# --- install ---------------------------------------------------------------------------------

check_python() {
    if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3-venv
    fi
    /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "/usr/bin/python3 is $(/usr/bin/python3 -V 2>&1); dockersh needs 3.11 or later"
    say "system Python: $(/usr/bin/python3 -V)"
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }
podman_answers() { timeout 10 podman --remote --url "unix://$podman_socket" version >/dev/null 2>&1; }

ensure_docker() {
    if ! command -v dockerd >/dev/null && ! docker_answers; then
        apt_install docker.io
    fi
    if docker_answers; then
        say "Docker is running"
        return
    fi
    if systemd_booted; then
        systemctl start docker
    else
        # Its own session, so that the end of this script or its terminal does not end it.
        # Without the install lock (fd 9) and the terminal (fds 3, 4): a daemon that kept the
        # lock would make every later install.sh wait for ever. From /, as a daemon should run
        # (dockerd leaves files in its working directory).
        (cd / && exec setsid -f dockerd >>/var/log/dockerd.log 2>&1 </dev/null 3>&- 4>&- 9>&-)
    fi
    local i
    for i in $(seq 60); do
        if docker_answers; then
            say "started the Docker daemon (after $((i / 2)) s)"
            return
        fi
        sleep 0.5
    done
    die "the Docker daemon did not answer within 30 s (see /var/log/dockerd.log)"
}

# Rootful Podman and its Docker-compatible API service: podman.socket under systemd, else a
# service of its own session (without this script's lock on fd 9 and the terminal, fds 3 and 4,
# as dockerd above).
ensure_podman() {
    if ! command -v podman >/dev/null || ! command -v catatonit >/dev/null; then
        apt_install podman catatonit   # catatonit is Podman's --init
    fi
    if podman_answers; then
        say "the Podman service answers on $podman_socket"
        return
    fi
    if systemd_booted; then
        systemctl enable --now --quiet podman.socket
    else
        install -d -m 0755 "$(dirname "$podman_socket")"
        (cd / && exec setsid -f podman system service --time=0 "unix://$podman_socket" \
            >>/var/log/podman-service.log 2>&1 </dev/null 3>&- 4>&- 9>&-)
    fi
    local i
    for i in $(seq 60); do
        if podman_answers; then
            say "started the Podman service on $podman_socket (after $((i / 2)) s)"
            return
        fi
        sleep 0.5
    done
    die "the Podman service did not answer within 30 s (see /var/log/podman-service.log)"
}

# A digest of what pip installs from: a re-run with the same sources and Python skips pip.
source_digest() {
    (cd "$src" && find dockersh setup.cfg pyproject.toml -name __pycache__ -prune -o -type f -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

install_venv() {
    local want have stamp=$venv/.dockersh-source digest
    want=$(/usr/bin/python3 -c 'import sys; print(sys.version_info[:2])')
    have=$("$venv/bin/python3" -c 'import sys; print(sys.version_info[:2])' 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
        install -d -m 0755 "$prefix"
        /usr/bin/python3 -m venv --clear "$venv"
        say "created the virtualenv $venv"
    fi
    digest=$(source_digest)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
        say "unchanged dockersh in $venv"
        return
    fi
    # setuptools reuses ./build: a module deleted since the last install would come back.
    rm -rf "$src/build"
    # [web]: aiohttp, for `dockersh web` only (never imported at login).
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check --upgrade "${src}[web]"
    printf '%s\n' "$digest" >"$stamp"
    say "installed dockersh $("$venv/bin/python3" -I -c 'import dockersh; print(dockersh.__version__)') into $venv"
}

# The static programs, compiled here from bin/ and linked statically. The login shell front
# (bin/dockersh-front.c) runs as the user with an environment the user may have written
# (~/.pam_environment), and a static program has no dynamic loader to honour LD_PRELOAD, LD_AUDIT
# or LD_LIBRARY_PATH. docker mode's exec helper (bin/dockersh-exec.c) runs inside containers,
# whose images have any libc or none. Refused when the result has a program interpreter or a
# dynamic section.
# compile_static SOURCE DESTINATION MODE
compile_static() {
    local tmp
    command -v gcc >/dev/null || apt_install gcc
    [ -e /usr/include/stdio.h ] && [ -e "$(gcc -print-file-name=libc.a)" ] || apt_install libc6-dev
    tmp=$(mktemp -d)
    gcc -static -O2 -s -Wall -Wextra -o "$tmp/program" "$src/bin/$1" ||
        die "could not compile $src/bin/$1"
    if LC_ALL=C readelf -lW "$tmp/program" | grep -q 'INTERP' ||
        LC_ALL=C readelf -dW "$tmp/program" | grep -q 'Dynamic section'; then
        rm -rf "$tmp"
        die "the compiled $1 is not statically linked: refused"
    fi
    # The mode first on the file in place: containers made before bind that inode, and keep it
    # when install replaces the file (an upgrade makes an old 0755 helper 0711 in them too).
    [ ! -e "$2" ] || chmod "$3" "$2"
    put_file "$3" "$tmp/program" "$2"
    rm -rf "$tmp"
}

install_programs() {
    local tmp purelib
    tmp=$(mktemp)
    # -I: no PYTHON* variables, no user site, not the script's directory. -S: no site module
    # (1.7 ms of every login); the venv's site-packages is put on sys.path by hand instead.
    purelib=$("$venv/bin/python3" -I -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    printf '%s\n' "#!$venv/bin/python3 -IS" 'import sys' \
        "sys.path.append('$purelib')" 'from dockersh.cli import main' \
        'raise SystemExit(main())' >"$tmp"
    put_file 755 "$tmp" "$entry"
    rm -f "$tmp"
    compile_static dockersh-front.c "$front" 755
    # Execute-only: the kernel makes a process of an unreadable program non-dumpable at its
    # execve, so no process of the user's can ptrace the helper before its own prctl runs.
    compile_static dockersh-exec.c "$exec_helper" 711
    if grep -qxF "$front" /etc/shells; then
        say "unchanged /etc/shells"
    else
        add-shell "$front"
        say "added $front to /etc/shells"
    fi
}

ensure_group() {
    if getent group "$group" >/dev/null; then
        say "group $group exists"
    else
        groupadd --system "$group"
        say "created group $group"
    fi
}

# dockersh web: the unprivileged account its HTTPS server runs as, and a self-signed certificate
# when the admin has none at the default path ([web] certificate and key point elsewhere).
install_web() {
    if id "$web_user" >/dev/null 2>&1; then
        say "user $web_user exists"
    else
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$web_user"
        say "created system user $web_user"
    fi
    command -v openssl >/dev/null || apt_install openssl
    install -d -o root -g root -m 0755 "$web_dir"
    if [ -e "$web_dir/cert.pem" ] || [ -e "$web_dir/key.pem" ]; then
        say "kept $web_dir/cert.pem and key.pem"
    else
        local name
        name=$(hostname -f 2>/dev/null || hostname)
        (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -days 825 -subj "/CN=$name" \
            -addext "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1,IP:::1" \
            -keyout "$web_dir/key.pem" -out "$web_dir/cert.pem" 2>/dev/null) ||
            die "openssl could not make a self-signed certificate in $web_dir"
        chmod 0644 "$web_dir/cert.pem"
        say "made a self-signed certificate for dockersh web: $web_dir/cert.pem"
    fi
    say "dockersh web certificate SHA-256 fingerprint $(openssl x509 -noout -fingerprint -sha256 -in "$web_dir/cert.pem" | cut -d= -f2)"
}

install_config() {
    local config=/etc/dockersh/dockersh.toml
    install -d -m 0755 /etc/dockersh
    if [ -e "$config" ]; then
        say "kept $config"
        if [ "$cli" = podman ] && ! grep -q '^backend = "podman"' "$config"; then
            say "note: set [engine] backend = \"podman\" in $config to use Podman"
        fi
    elif [ "$cli" = podman ]; then
        local tmp
        tmp=$(mktemp)
        sed 's/^#backend = "docker"$/backend = "podman"/' "$src/etc/dockersh.toml" >"$tmp"
        put_file 644 "$tmp" "$config"
        rm -f "$tmp"
    else
        put_file 644 "$src/etc/dockersh.toml" "$config"
    fi
}

install_sudoers() {
    [ -x /usr/bin/sudo ] || apt_install sudo
    grep -Eq '^[@#]includedir[[:space:]]+/etc/sudoers\.d' /etc/sudoers ||
        die "/etc/sudoers does not include /etc/sudoers.d; add: @includedir /etc/sudoers.d"
    local tmp
    tmp=$(mktemp)
    cp "$src/etc/sudoers.d/dockersh" "$tmp"
    visudo -qcf "$tmp" || die "visudo rejects etc/sudoers.d/dockersh"
    put_file 440 "$tmp" "$sudoers"
    rm -f "$tmp"
    visudo -qc || { rm -f "$sudoers"; die "sudo's configuration is invalid with $sudoers: removed it"; }
}

# Reload a running sshd after a change of its configuration; never stop it. A SIGHUP makes sshd
# re-execute itself, and one that cannot read its configuration then exits: check it first.
reload_sshd() {
    local how pid
    if systemd_booted && systemctl is-active --quiet ssh; then
        how=(systemctl reload ssh)
    elif pid=$(cat /run/sshd.pid 2>/dev/null) && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sshd ]; then
        how=(kill -HUP "$pid")
    else
        say "sshd is not running: nothing to reload"
        return
    fi
    if ! /usr/sbin/sshd -t; then
        say "sshd -t fails: did not reload sshd"
        return
    fi
    "${how[@]}"
    say "reloaded sshd (${how[*]})"
}

# The block install.sh puts before each pam_env line of sshd's PAM stack that reads the user's
# ~/.pam_environment (Debian's and Ubuntu's `pam_env.so user_readenv=1`): members of group
# dockersh get the same line without user_readenv (the system files only), everyone else the
# line as it was. A failed group lookup counts as a member. `--uninstall` deletes the block.
pam_begin='# BEGIN dockersh (install.sh): members of group dockersh never read ~/.pam_environment'
pam_end='# END dockersh: ~/.pam_environment'

# The file without the block. A block without its end line (a hand edit) is kept as it is;
# the end line of an earlier install.sh was the bare "# END dockersh".
pam_without_block() {
    awk -v b="$pam_begin" '
        $0 == b { held = $0 "\n"; inside = 1; next }
        inside { held = held $0 "\n"; if (index($0, "# END dockersh") == 1) { inside = 0; held = "" }; next }
        { print }
        END { if (inside) printf "%s", held }' "$1"
}

pam_with_block() {
    pam_without_block "$1" | awk -v b="$pam_begin" -v e="$pam_end" -v g="$group" '
        {
            line = $0; sub(/#.*/, "", line)
            if (line !~ /pam_env\.so/ || line !~ /[ \t]user_readenv=1([ \t]|$)/) { print; next }
            split(line, f, /[ \t]+/); type = (f[1] == "" ? f[2] : f[1]); sub(/^-/, "", type)
            args = substr(line, index(line, "pam_env.so") + length("pam_env.so"))
            gsub(/[ \t]+user_(readenv|envfile)=[^ \t]*/, "", args)
            print b
            print type " [success=1 default=ignore] pam_succeed_if.so quiet user notingroup " g
            print type " [success=1 ignore=1 default=die] pam_env.so" args
            print e
            print
        }'
}

# swap_pam: standard input becomes $pam_sshd, with its mode and owner, in one rename in its
# directory: sshd reads the file at every connection, so it never sees a half-written one.
swap_pam() {
    local tmp
    tmp=$(mktemp "$pam_sshd.XXXXXX")
    cat >"$tmp"
    chmod --reference="$pam_sshd" "$tmp"
    chown --reference="$pam_sshd" "$tmp"
    mv -f "$tmp" "$pam_sshd"
}

# put_pam MODE: rewrite $pam_sshd with (add) or without (remove) the block, when that differs.
put_pam() {
    local tmp
    [ -e "$pam_sshd" ] || { [ "$1" = remove ] && return; die "$pam_sshd is missing"; }
    tmp=$(mktemp)
    if [ "$1" = add ]; then pam_with_block "$pam_sshd" >"$tmp"; else pam_without_block "$pam_sshd" >"$tmp"; fi
    if cmp -s "$tmp" "$pam_sshd"; then
        rm -f "$tmp"
        say "unchanged $pam_sshd"
        return
    fi
    swap_pam <"$tmp"
    rm -f "$tmp"
    if [ "$1" = add ]; then
        say "$pam_sshd: members of group $group no longer read ~/.pam_environment"
    else
        say "$pam_sshd: removed the dockersh block"
    fi
}

# directory_nss: what of passwd, group, shadow, initgroups and sudoers /etc/nsswitch.conf takes
# from sssd, LDAP or winbind ("passwd: sss; group: sss"), or nothing: the same test as doctor's
# (dockersh/admin/hostchain.py, from this source tree: -B writes nothing into it).
directory_nss() {
    /usr/bin/python3 -I -B -c 'import sys; sys.path.insert(0, sys.argv[1])
from dockersh.admin.hostchain import directory_nss
print(directory_nss())' "$src"
}

# sshd's jail (unix-socket forwards) holds no sockets of those services: sudo in it could not
# resolve their users. On such a host the jail is off: the PAM module's `nojail`, and the
# drop-in with `ChrootDirectory none` and `AllowStreamLocalForwarding no` (no unix-socket
# forwards; TCP forwarding still happens in the container's network).
pam_dockersh_args=
dropin_without_jail() {
    sed -e 's|^    ChrootDirectory /run/dockersh/jail$|    ChrootDirectory none|' \
        -e 's|^    AllowStreamLocalForwarding local$|    AllowStreamLocalForwarding no|' \
        -e "1i # install.sh: sshd's jail is off on this host (${1//[^A-Za-z0-9 :;_-]/} in /etc/nsswitch.conf): no unix-socket forwards." \
        "$src/etc/sshd_config.d/dockersh.conf"
}

install_sshd() {
    # Fail closed: without sshd here now, one installed later would run without the drop-in
    # and the PAM block. Install it, so both are in place before any dockersh user logs in.
    if [ ! -x /usr/sbin/sshd ] || [ ! -e /etc/ssh/sshd_config ] || [ ! -e "$pam_sshd" ]; then
        apt_install openssh-server
    fi
    put_pam add
    local directory dropin
    directory=$(directory_nss) || die "cannot read /etc/nsswitch.conf with /usr/bin/python3"
    dropin=$(mktemp)
    if [ -n "$directory" ]; then
        pam_dockersh_args=' nojail'
        dropin_without_jail "$directory" >"$dropin"
        grep -qx '    ChrootDirectory none' "$dropin" &&
            grep -qx '    AllowStreamLocalForwarding no' "$dropin" ||
            { rm -f "$dropin"; die "cannot turn the jail off in etc/sshd_config.d/dockersh.conf"; }
        say "sshd's jail is off: this host's $directory (/etc/nsswitch.conf) are out of its reach; no unix-socket forwards (SECURITY.md, \"Forwarding\")"
    else
        cp "$src/etc/sshd_config.d/dockersh.conf" "$dropin"
    fi
    # The forwarding block before the drop-in that allows forwarding: never one without the other.
    install_pam_module
    local previous
    previous=$(mktemp)
    cp -p "$sshd_dropin" "$previous" 2>/dev/null || rm -f "$previous"
    put_file 644 "$dropin" "$sshd_dropin"
    rm -f "$dropin"
    local reload=$changed
    if ! grep -qxF "$sshd_include" /etc/ssh/sshd_config; then
        # At the top: an Include after a Match line would belong to that Match.
        sed -i "1i $sshd_include" /etc/ssh/sshd_config
        say "added '$sshd_include' to /etc/ssh/sshd_config"
        reload=yes
    fi
    install -d -m 0755 /run/sshd   # sshd -t needs its privilege separation directory
    if ! /usr/sbin/sshd -t; then
        # The one before, not none: without it sshd's defaults would apply to members (unix-
        # socket forwards on the host) at its next start.
        if [ -e "$previous" ]; then mv -f "$previous" "$sshd_dropin"; else rm -f "$sshd_dropin"; fi
        die "sshd -t fails with the new $sshd_dropin: put the one before back (or none), sshd left as it was"
    fi
    rm -f "$previous"
    if [ "$reload" = yes ]; then reload_sshd; fi
}

# pam_dockersh.so (pam-module/pam_dockersh.c): sshd joins a member's container network at
# login, so that its forwarding (ssh -L/-D/-W/-R) happens there and never on the host. Built
# here with the host's compiler and PAM headers; the block at the end of /etc/pam.d/sshd applies
# to group dockersh only.
pam_block_begin='# BEGIN dockersh: forwarding into the container (install.sh; --uninstall removes it)'
pam_block_end='# END dockersh: forwarding'
# The block's lines, as a sed address range (print with p, delete with d).
pam_block_range="\|^$pam_block_begin\$|,\|^$pam_block_end\$|"
pam_module_dir() { dirname "$(find /lib /usr/lib -name pam_unix.so -path '*security*' | head -1)"; }

pam_forwarding_block() {
    printf '%s\n%s\n%s\n%s\n' "$pam_block_begin" \
        "session [success=1 default=ignore] pam_succeed_if.so quiet user notingroup $group" \
        "session required pam_dockersh.so${pam_dockersh_args}" "$pam_block_end"
}

install_pam_module() {
    local dir tmp
    if ! command -v gcc >/dev/null || [ ! -e /usr/include/security/pam_modules.h ]; then
        apt_install gcc libc6-dev libpam0g-dev
    fi
    dir=$(pam_module_dir)
    [ -d "$dir" ] || die "cannot find the PAM module directory (no pam_unix.so)"
    tmp=$(mktemp)
    gcc -O2 -Wall -Wextra -Werror -fPIC -shared -o "$tmp" "$src/pam-module/pam_dockersh.c" -lpam ||
        die "cannot build pam-module/pam_dockersh.c"
    put_file 644 "$tmp" "$dir/pam_dockersh.so"
    rm -f "$tmp"
    [ -e /etc/pam.d/sshd ] || die "/etc/pam.d/sshd is missing: no forwarding block, no drop-in"
    if grep -qxF "$pam_block_begin" /etc/pam.d/sshd; then
        grep -qxF "$pam_block_end" /etc/pam.d/sshd ||
            die "/etc/pam.d/sshd has the dockersh forwarding block's first line but not its last: fix it by hand"
        if sed -n "${pam_block_range}p" /etc/pam.d/sshd |
            cmp -s - <(pam_forwarding_block); then
            say "unchanged /etc/pam.d/sshd (dockersh forwarding block)"
            return
        fi
    fi
    # Last in the session stack: everything else of the session is set up in the host's network.
    # One rename: never a moment without the block (members' forwards would be the host's).
    tmp=$(mktemp)
    sed "${pam_block_range}d" /etc/pam.d/sshd >"$tmp" || { rm -f "$tmp"; die "cannot read /etc/pam.d/sshd"; }
    pam_forwarding_block >>"$tmp"
    swap_pam <"$tmp"
    rm -f "$tmp"
    say "put the dockersh forwarding block at the end of /etc/pam.d/sshd (group dockersh only)"
}

remove_pam_module() {
    if [ -e /etc/pam.d/sshd ] && grep -qxF "$pam_block_begin" /etc/pam.d/sshd; then
        sed -i "${pam_block_range}d" /etc/pam.d/sshd
        say "removed the dockersh forwarding block from /etc/pam.d/sshd"
    fi
    remove "$(pam_module_dir)/pam_dockersh.so"
}

make_dirs() {
    install -d -o root -g root -m 0700 /run/dockersh
    install -d -o root -g root -m 0755 /var/lib/dockersh
    install -d -o root -g adm -m 0750 /var/log/dockersh
    say "directories /run/dockersh (0700) /var/lib/dockersh (0755) /var/log/dockersh (0750)"
}

# Always installed (a host may boot systemd later): no systemd --user for group members.
install_user_manager_dropin() {
    put_file 644 "$src/etc/systemd/user@.service.d/dockersh.conf" "$user_manager_dropin"
    if [ "$changed" = yes ] && systemd_booted; then systemctl daemon-reload; fi
}

install_timer() {
    if ! systemd_booted; then
        say "systemd is not PID 1: no gc timer; for cron, /etc/cron.d/dockersh: */15 * * * * root $front gc"
        say "and no dockersh-web.service: run '$front web' from your service manager"
        return
    fi
    local unit any=no
    for unit in "${units[@]}"; do
        put_file 644 "$src/etc/systemd/$unit" "/etc/systemd/system/$unit"
        [ "$changed" = no ] || any=yes
    done
    [ "$any" = no ] || systemctl daemon-reload
    systemctl enable --now --quiet dockersh-gc.timer
    say "enabled dockersh-gc.timer"
    if [ "$(systemctl is-enabled dockersh-web.service 2>/dev/null)" = enabled ]; then
        [ "$any" = no ] || systemctl try-restart dockersh-web.service
        say "dockersh-web.service is enabled"
    else
        say "installed dockersh-web.service, not enabled (systemctl enable --now dockersh-web)"
    fi
}

build_image() {
    local rebuild=$1
    if [ "$rebuild" = no ] && "$cli" image inspect "$image" >/dev/null 2>&1; then
        say "image $image exists (--rebuild-image builds it again)"
        return
    fi
    # The base comes from the registry; a host that cannot reach one (an offline or mirrored
    # site) gets the same Debian release made locally with debootstrap, as the test suite does.
    if ! "$cli" image inspect debian:bookworm-slim >/dev/null 2>&1 &&
        ! "$cli" pull -q docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
        say "no registry for debian:bookworm-slim: making it locally with debootstrap"
        ENGINE_CLI=$cli "$src/tests/images/make-debian-base.sh" ||
            die "could not make debian:bookworm-slim"
    fi
    say "building $image from $src/Dockerfile (a few minutes; progress in $log)"
    local start=$SECONDS
    # The Dockerfile copies nothing in: build it without a context.
    if [ "$cli" = docker ]; then
        docker build -t "$image" - <"$src/Dockerfile" || die "could not build $image"
    else
        local empty
        empty=$(mktemp -d)
        podman build -t "$image" -f "$src/Dockerfile" "$empty" || die "could not build $image"
        rmdir "$empty"
    fi
    say "built $image in $((SECONDS - start)) s"
}

run_demo() {
    if id "$demo_user" >/dev/null 2>&1; then
        say "user $demo_user exists"
    else
        useradd --create-home --shell "$front" --groups "$group" "$demo_user"
        say "created user $demo_user (no password)"
    fi
    local cmd='id; cat /etc/os-release | head -1'
    say "demo: $front --user $demo_user -c '$cmd'"
    # On the terminal, and without the install lock: nothing it starts may keep that.
    "$front" --user "$demo_user" -c "$cmd" >&3 2>&4 9>&-
}

do_install() {
    local rebuild=$1 demo=$2
    check_python
    if [ "$cli" = podman ]; then ensure_podman; else ensure_docker; fi
    install_venv
    install_programs
    ensure_group
    install_config
    install_web
    install_sudoers
    put_file 644 "$src/etc/pam.d/dockersh" /etc/pam.d/dockersh
    install_sshd
    install_user_manager_dropin
    make_dirs
    put_file 644 "$src/etc/logrotate.d/dockersh" /etc/logrotate.d/dockersh
    install_timer
    build_image "$rebuild"
    cat >&3 <<EOF

dockersh is installed. Enroll a user (login shell + group):
    usermod -s $front -aG $group alice      (or: $front enroll alice)
Global config: /etc/dockersh/dockersh.toml (check it with: $front config check)
Web terminal (off): $front web --listen 127.0.0.1:8022, or systemctl enable --now dockersh-web
Remove: $src/install.sh --uninstall [--purge]
The full log of this run: $log
EOF
    if [ "$demo" = yes ]; then run_demo; fi
}

# --- uninstall -------------------------------------------------------------------------------

# The engine the global config selects, as the installed dockersh reads it (any TOML spelling);
# nothing when it cannot say.
configured_engine() {
    "$prefix/sbin/dockersh" config show root 2>/dev/null | awk '
        /^\[/ { table = $0 }
        table == "[engine]" && $1 == "backend" { gsub(/"/, "", $3); print $3 }'
}

do_uninstall() {
    local purge=$1 unit engine
    # Asked before $prefix goes: the engine whose containers --purge removes.
    if [ "$purge" = yes ] && [ -z "$engine_given" ] && [ -e /etc/dockersh/dockersh.toml ]; then
        engine=$(configured_engine)
        case $engine in
            docker | podman) cli=$engine ;;
            *) say "cannot read [engine] backend from /etc/dockersh/dockersh.toml:" \
                "purging $cli's containers (--engine podman for Podman's)" ;;
        esac
    fi
    # The boundary first: from here on nobody gets in.
    remove "$sudoers"
    if systemd_booted; then
        systemctl disable --now --quiet dockersh-gc.timer dockersh-web.service 2>/dev/null || true
        for unit in "${units[@]}"; do remove "/etc/systemd/system/$unit"; done
        systemctl daemon-reload
    fi
    if [ -e "$sshd_dropin" ]; then
        remove "$sshd_dropin"
        reload_sshd
    fi
    put_pam remove
    if [ -e "$user_manager_dropin" ]; then
        remove "$user_manager_dropin"
        rmdir --ignore-fail-on-non-empty "$(dirname "$user_manager_dropin")"
        if systemd_booted; then systemctl daemon-reload; fi
    fi
    remove_pam_module
    remove /etc/pam.d/dockersh /etc/logrotate.d/dockersh "$front" "$prefix" /run/dockersh \
        /var/lib/dockersh
    if grep -qxF "$front" /etc/shells; then
        remove-shell "$front"
        say "removed $front from /etc/shells"
    fi
    if [ "$purge" = yes ]; then
        if ! "${cli}_answers"; then
            say "the $cli engine does not answer: kept the containers and $image"
        else
            local ids
            mapfile -t ids < <("$cli" ps -aq --filter label=dockersh.user)
            if [ ${#ids[@]} -gt 0 ]; then
                "$cli" rm -f "${ids[@]}" >/dev/null
                say "removed containers: ${ids[*]}"
            fi
            if "$cli" image inspect "$image" >/dev/null 2>&1; then
                "$cli" rmi "$image" >/dev/null
                say "removed image $image"
            fi
        fi
        remove /etc/dockersh /var/log/dockersh
        if id "$web_user" >/dev/null 2>&1 && userdel "$web_user"; then
            say "removed system user $web_user"
        fi
        if ! getent group "$group" >/dev/null; then
            :
        elif groupdel "$group"; then
            say "removed group $group"
        else
            say "kept group $group: groupdel refused (the primary group of a user?)"
        fi
    else
        say "kept /etc/dockersh (and $web_dir), /var/log/dockersh, group $group, user $web_user, containers and $image (--purge removes them)"
    fi
    local left
    left=$(getent passwd | awk -F: -v s="$front" '$7 == s { printf "%s ", $1 }')
    if [ -n "$left" ]; then
        say "these users still have $front as login shell and cannot log in: $left"
        say "give them another shell: usermod -s /bin/bash NAME"
    fi
    say "dockersh is uninstalled"
}

# --- main ------------------------------------------------------------------------------------

# From here on everything but say and die goes to the log. A command that fails under set -e
# names itself and the log on the terminal.
open_log() {
    install -d -o root -g adm -m 0750 "${log%/*}"
    exec >>"$log" 2>&1
    logging=yes
    printf '\n==== %s: install.sh %s from %s\n' "$(date -u '+%F %T UTC')" "$1" "$src"
    say "the full log of this run: $log"
    trap 'failed $? $LINENO' ERR
}

failed() {
    # In a subshell ($(...)), only exit: the script reports the command that used it.
    [ "$BASHPID" = $$ ] || exit "$1"
    die "line $2: '$BASH_COMMAND' failed (exit $1)"
}

main() {
    local action=install rebuild=no demo=no purge=no
    while [ $# -gt 0 ]; do
        case $1 in
            --engine)
                case ${2:-} in
                    docker | podman) cli=$2 engine_given=yes ;;
                    *) usage >&2; exit 2 ;;
                esac
                shift ;;
            --rebuild-image) rebuild=yes ;;
            --demo) demo=yes ;;
            --uninstall) action=uninstall ;;
            --purge) purge=yes ;;
            -h | --help) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
        shift
    done
    if [ "$purge" = yes ] && [ "$action" != uninstall ]; then
        die "--purge goes with --uninstall"
    fi
    [ "$(id -u)" -eq 0 ] || die "run me as root"
    # One install.sh at a time: a second one waits here.
    exec 9>/run/dockersh-install.lock
    if ! flock -n 9; then
        say "waiting for another install.sh to finish (it holds /run/dockersh-install.lock)"
        flock 9
    fi
    open_log "$action"
    if [ "$action" = uninstall ]; then
        do_uninstall "$purge"
    else
        do_install "$rebuild" "$demo"
    fi
}

main "$@"
