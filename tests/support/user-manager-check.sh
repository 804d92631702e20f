#!/bin/bash
# usage: user-manager-check.sh PORT
#
# On a systemd-booted host, as root, with group dockersh and install.sh's drop-in
# /etc/systemd/system/user@.service.d/dockersh.conf: a member of group dockersh and an outsider
# each enable a unit in ~/.config/systemd/user/ (as a user can from inside their container), then
# log in through the sshd on 127.0.0.1:PORT (pam_systemd starts user@UID.service). The outsider's
# user manager runs the unit (the control: this host does start user managers at login); the
# member's never starts, not at login and not when it is started as lingering would start it.
# Removes the users it made. Exit status 0 when all holds; one line per check.
set -euo pipefail
port=$1
tag=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
member=umm$tag
outsider=umo$tag
work=$(mktemp -d)

fail() { echo "user-manager-check: FAIL: $*" >&2; exit 1; }

cleanup() {
    local name uid pid
    for name in "$member" "$outsider"; do
        uid=$(id -u "$name" 2>/dev/null) || continue
        systemctl stop "user@$uid.service" 2>/dev/null || true
        loginctl terminate-user "$name" 2>/dev/null || true
        for pid in $(ps -o pid= -U "$uid" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        userdel -r -f "$name" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

make_user() {
    local name=$1 home
    shift
    useradd -m -s /bin/sh "$@" "$name"
    home=$(getent passwd "$name" | cut -d: -f6)
    ssh-keygen -q -t ed25519 -N '' -f "$work/$name"
    install -d -m 700 "$home/.ssh" "$home/.config/systemd/user/default.target.wants"
    cp "$work/$name.pub" "$home/.ssh/authorized_keys"
    printf '%s\n' '[Service]' 'Type=oneshot' 'ExecStart=/bin/touch %h/user-unit-ran' \
        '[Install]' 'WantedBy=default.target' >"$home/.config/systemd/user/mark.service"
    ln -s ../mark.service "$home/.config/systemd/user/default.target.wants/mark.service"
    chown -R "$name:" "$home"
}

login() {
    ssh -F none -i "$work/$1" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -p "$port" \
        "$1@127.0.0.1" true </dev/null || fail "ssh login of $1 failed"
}

manager_of() {  # the pids of a running `systemd --user` of that uid
    ps -o pid=,args= -U "$1" | awk '$2 ~ /(^|\/)systemd$/ && $3 == "--user" { print $1 }'
}

[ -d /run/systemd/system ] || fail "systemd is not PID 1 here"
getent group dockersh >/dev/null || fail "there is no group dockersh"
make_user "$member" -G dockersh
make_user "$outsider"
muid=$(id -u "$member")
ouid=$(id -u "$outsider")
login "$outsider"
login "$member"
home_of() { getent passwd "$1" | cut -d: -f6; }
for _ in $(seq 100); do
    [ -e "$(home_of "$outsider")/user-unit-ran" ] && break
    sleep 0.1
done
[ -e "$(home_of "$outsider")/user-unit-ran" ] ||
    fail "control: the outsider's user manager did not run its unit (is pam_systemd in sshd's stack?)"
echo "ok    control: the outsider's user@$ouid.service ran ~/.config/systemd/user/mark.service"
systemctl start "user@$muid.service" || fail "systemctl start user@$muid.service failed"
sleep 1
[ ! -e "$(home_of "$member")/user-unit-ran" ] || fail "the member's unit ran on the host"
[ -z "$(manager_of "$muid")" ] || fail "systemd --user runs for the member: $(manager_of "$muid")"
state=$(systemctl show -P ActiveState "user@$muid.service")
[ "$state" != active ] || fail "user@$muid.service is active"
echo "ok    the member's user@$muid.service never ran (after a login and a start: $state)"
