#!/bin/bash
# Run inside a fresh host made by tests/hosts/run, as root, from a clean clone in /root/dockersh:
# the README's commands exactly as a new admin types them, then an SSH login as an enrolled user
# (README "Log in as a user over SSH"), in both exec modes. One line per step on stdout:
# "hosts: KIND: STEP: ok|FAILED (N s)"; the first failure ends the run with status 1.
#
#   inside.sh plain|hostcgroup  no systemd: install.sh installs and starts Docker itself;
#                       then a second ./install.sh and --uninstall must finish (the lock)
#   inside.sh systemd   systemd as PID 1 (docker.io and sshd started by it): the gc timer, then
#                       the part of the test suite that exercises install, the login chain, sshd
#   inside.sh ubuntu    the same on Ubuntu 24.04, without the test suite (its setup is Debian's)
#   inside.sh podman    as plain, with the README's `./install.sh --engine podman`: rootful
#                       Podman instead of Docker, of which nothing may be on the host; then
#                       dockersh doctor, and --uninstall --purge empties Podman
set -uo pipefail
kind=$1
# The engine the containers run in, and install.sh's arguments for it.
engine=docker engine_args=()
if [ "$kind" = podman ]; then engine=podman engine_args=(--engine podman); fi
export engine
cd /root/dockersh || exit 1
export DEBIAN_FRONTEND=noninteractive

# step NAME TIMEOUT CMD...: run CMD (output to this script's stdout), bounded, and say how it went.
step() {
    local name=$1 limit=$2 start=$SECONDS status=0
    shift 2
    echo "---- $name: $*"
    # Through bash -c, so that CMD may be one of the functions below (exported).
    timeout --kill-after=10 "$limit" bash -ec '"$@"' step "$@" || status=$?
    if [ "$status" = 0 ]; then
        echo "hosts: $kind: $name: ok ($((SECONDS - start)) s)"
    else
        [ "$status" != 124 ] || echo "(timed out after $limit s)"
        echo "hosts: $kind: $name: FAILED, exit $status ($((SECONDS - start)) s)"
        exit 1
    fi
}

# The README's "Log in as a user over SSH", step by step, for a new user alice.
make_user() {
    useradd --create-home alice
    dockersh enroll alice
    install -d -m 0700 -o alice -g alice ~alice/.ssh
    ssh-keygen -q -t ed25519 -N '' -f /root/alice-key
    install -m 0600 -o alice -g alice /root/alice-key.pub ~alice/.ssh/authorized_keys
    if [ -d /run/systemd/system ]; then
        systemctl start ssh   # Ubuntu 24.04 starts it at the first connection (ssh.socket)
    else
        mkdir -p /run/sshd
        /usr/sbin/sshd
    fi
}

# ssh_in MODE: alice's command runs in her container: its mount and pid namespaces.
ssh_in() {
    local mode=$1 got want pid
    sed -i "0,/^#\?exec = .*/s//exec = \"$mode\"/" /etc/dockersh/dockersh.toml  # [session] exec
    grep -x "exec = \"$mode\"" /etc/dockersh/dockersh.toml
    got=$(ssh -i /root/alice-key -o StrictHostKeyChecking=accept-new -o BatchMode=yes \
        alice@localhost 'echo "$(id -un) $(readlink /proc/self/ns/mnt /proc/self/ns/pid)"')
    pid=$("$engine" inspect -f '{{.State.Pid}}' \
        "$("$engine" ps -q --filter label=dockersh.user=alice)")
    want="alice $(readlink "/proc/$pid/ns/mnt" "/proc/$pid/ns/pid")"
    echo "got:  $got"
    echo "want: $want"
    [ "$got" = "$want" ]
}
# no_docker: nothing of Docker came with Podman (no package, no program, no daemon, no socket).
no_docker() {
    if dpkg-query -W -f='${binary:Package} ${db:Status-Status}\n' docker.io docker-ce \
        docker-ce-cli 2>/dev/null | grep ' installed$'; then
        return 1
    fi
    local found
    for found in "$(command -v docker)" "$(command -v dockerd)" /run/docker.sock; do
        if [ -e "$found" ]; then echo "found $found"; return 1; fi
    done
}
# purged: --purge removed the users' containers and the image from Podman, and the config.
purged() {
    [ -z "$(podman ps -aq --filter label=dockersh.user)" ] &&
        ! podman image exists dockersh-session:latest && [ ! -e /etc/dockersh ]
}
# output_kept_by_none: no process outside this step holds its stdout, the pipe install.sh wrote
# to (an engine it started in the background must not keep it: `ssh host ./install.sh` or a
# `| tee` would then never end).
output_kept_by_none() {
    local out p fd mine=' ' holders=
    out=$(readlink "/proc/$$/fd/1")
    p=$$   # this step's bash, timeout and this script hold it
    while [ "$p" -gt 1 ]; do mine+="$p "; p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status"); done
    for fd in /proc/[0-9]*/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = "$out" ] || continue
        p=${fd#/proc/} p=${p%%/*}
        # Its write end only (O_WRONLY in the flags, octal).
        (($(awk '/^flags:/ {print "0" $2}' "/proc/$p/fdinfo/${fd##*/}") & 1)) || continue
        [[ $mine == *" $p "* ]] || holders+="$p ($(cat "/proc/$p/comm")) "
    done
    if [ -n "$holders" ]; then echo "$out is held by: $holders"; return 1; fi
}
# socket_refuses USER: USER's connect to the engine's socket (Podman's, as install.sh started
# it) is refused by its permissions.
socket_refuses() {
    local said
    if said=$(runuser -u "$1" -- /usr/bin/python3 -c 'import socket, sys
socket.socket(socket.AF_UNIX).connect(sys.argv[1])' /run/podman/podman.sock 2>&1); then
        echo "$1 connected to /run/podman/podman.sock"
        return 1
    fi
    echo "$said" | tail -n 1
    [[ $said == *PermissionError* ]]
}
export -f make_user ssh_in no_docker purged output_kept_by_none socket_refuses

# The README's first command, exactly as written (for Podman, its section's).
step "install (./install.sh ${engine_args[*]:+${engine_args[*]} }--demo)" 900 \
    ./install.sh "${engine_args[@]}" --demo
case $kind in
    plain | hostcgroup | podman)
        # The engine was started by install.sh: it must not hold the install lock.
        step "install again (./install.sh${engine_args[*]:+ ${engine_args[*]}})" 120 \
            ./install.sh "${engine_args[@]}"
        ;;
    systemd | ubuntu)
        step 'gc timer active' 10 systemctl is-active dockersh-gc.timer
        ;;
esac
if [ "$kind" = podman ]; then
    step 'no Docker on the host' 10 no_docker
    step "Podman's service keeps none of install.sh's output" 30 output_kept_by_none
fi
step 'enroll alice, give her a key, sshd running' 30 make_user
step 'ssh login into her container (exec = "docker")' 60 ssh_in docker
step 'ssh login into her container (exec = "nsenter")' 60 ssh_in nsenter
if [ "$kind" = podman ]; then
    step 'alice cannot reach the Podman socket' 30 socket_refuses alice
    step 'dockersh doctor' 60 dockersh doctor
fi
case $kind in
    plain | hostcgroup)
        step 'uninstall (./install.sh --uninstall)' 120 ./install.sh --uninstall
        ;;
    podman)
        # --purge finds Podman in the config, however TOML spells it (the installed dockersh
        # reads it, before install.sh removes it).
        step 'the config spells its engine otherwise' 10 \
            sed -i "s/^backend = \"podman\"\$/backend='podman'  # spelled otherwise/" \
            /etc/dockersh/dockersh.toml
        step 'uninstall (./install.sh --uninstall --purge)' 120 ./install.sh --uninstall --purge
        step 'containers, image and config gone' 30 purged
        ;;
    systemd)
        # No Podman in here (overlay on overlay): its install test runs on the machine itself.
        export DOCKERSH_PODMAN=0
        step 'test setup (tests/setup-host.sh)' 900 tests/setup-host.sh
        # The parts of the suite about install, the login chain and sshd, by path: new files count.
        # shellcheck disable=SC2046 # one word per path
        step 'tests: install, login chain, sshd' 1800 env DOCKERSH_NO_SKIP=1 \
            "$(tests/setup-host.sh --print-venv)/bin/python" -m pytest -p no:cacheprovider -q \
            -k "not engine_podman" \
            $(ls -d tests/e2e tests/test_install.py tests/test_security_host.py 2>/dev/null)
        ;;
esac
echo "hosts: $kind: all steps ok"
