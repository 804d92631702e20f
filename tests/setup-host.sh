#!/usr/bin/env bash
# Prepares this Debian 12 machine for the test suite, as root: the OS packages the tests use, a
# running dockerd and Podman API service (the second back end's pass), and the test virtualenv (system Python, the package installed editable with its
# test extras). .ci/run and tests/run both call it; it is idempotent and takes well under a second
# when everything is already there. Progress goes to stderr.
#
#   tests/setup-host.sh               everything
#   tests/setup-host.sh --dockerd     only make sure dockerd and the Podman service answer (the
#                                     test fixtures use this)
#   tests/setup-host.sh --print-venv  print the test virtualenv's path, change nothing
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# Outside the work tree, so that it never lands in a docker build context; one per clone, because
# the editable install points at the clone.
venv=${DOCKERSH_TEST_VENV:-/var/tmp/dockersh-test-venv-$(printf '%s' "$repo" | sha256sum | cut -c1-12)}
dockerd_log=/var/log/dockerd.log
podman_socket=/run/podman/podman.sock
podman_log=/var/log/podman-service.log
podman_limits=/etc/containers/containers.conf.d/dockersh-test-ulimits.conf

packages=(
  docker.io openssh-server openssh-client sudo busybox-static debootstrap tmux rsync git
  python3-venv shellcheck util-linux procps iproute2 docker-registry xauth openssl
  chromium chromium-driver podman catatonit sshfs
)

log() { printf 'setup-host: %s\n' "$*" >&2; }

install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >&2
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {
  docker_answers && return 0
  log "starting dockerd (log: $dockerd_log)"
  # Its own session, so that nothing that ends this script's process group ends the daemon;
  # from / (dockerd leaves files in its working directory).
  (cd / && exec setsid -f dockerd >>"$dockerd_log" 2>&1 </dev/null)
  wait_until docker_answers dockerd "$dockerd_log"
}

# wait_until CHECK WHAT LOG: up to 30 s for CHECK to succeed, else the end of WHAT's LOG.
wait_until() {
  local i
  for ((i = 0; i < 60; i++)); do
    "$1" && return 0
    sleep 0.5
  done
  log "$2 did not answer within 30 s; the end of $3:"
  tail -n 40 "$3" >&2
  return 1
}

podman_answers() { timeout 10 docker -H "unix://$podman_socket" version >/dev/null 2>&1; }

# Rootful Podman's default rlimits (nofile 1048576) need CAP_SYS_RESOURCE to be set when the
# hard limit is lower, which root lacks on these machines: then every container fails to start.
# The limits we have instead, only where that is so (a normal host needs no drop-in).
podman_limits() {
  if (ulimit -Hn 1048576) 2>/dev/null; then
    rm -f "$podman_limits"
    return 0
  fi
  local n
  n=$(ulimit -Hn)
  mkdir -p "$(dirname "$podman_limits")"
  printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n' "$n" "$n" \
    >"$podman_limits.tmp"
  cmp -s "$podman_limits.tmp" "$podman_limits" 2>/dev/null || log "writing $podman_limits"
  mv "$podman_limits.tmp" "$podman_limits"
}

start_podman() {
  # DOCKERSH_PODMAN=0: no Podman service (a nested test host, where its storage cannot be
  # overlay on overlay; the Podman pass runs on the machine itself).
  [ "${DOCKERSH_PODMAN:-1}" = 1 ] || return 0
  podman_limits
  podman_answers && return 0
  log "starting the Podman API service on $podman_socket (log: $podman_log)"
  mkdir -p "$(dirname "$podman_socket")"
  (cd / && exec setsid -f podman system service --time=0 "unix://$podman_socket" \
    >>"$podman_log" 2>&1 </dev/null)
  wait_until podman_answers "the Podman service" "$podman_log"
}

make_venv() {
  local stamp=$venv/.dockersh-test-stamp want
  want="$(cat "$repo/setup.cfg" "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1) $repo"
  if [[ -x $venv/bin/python && -f $stamp && $(<"$stamp") == "$want" ]]; then
    return 0
  fi
  if [[ ! -x $venv/bin/python ]]; then
    log "creating the test virtualenv $venv"
    /usr/bin/python3 -m venv "$venv"
  fi
  log "installing the package and its test extras into $venv"
  "$venv/bin/python" -m pip install -q -e "${repo}[test]" >&2
  printf '%s\n' "$want" >"$stamp"
}

case ${1:-} in
  --print-venv) printf '%s\n' "$venv"; exit 0 ;;
  --dockerd) start_dockerd && start_podman; exit ;;
  '') ;;
  *) echo "usage: $0 [--dockerd | --print-venv]" >&2; exit 2 ;;
esac

if ((EUID != 0)); then
  log "run me as root: the tests create users and start sshd and dockerd"
  exit 1
fi
install_packages
start_dockerd
start_podman
make_venv
