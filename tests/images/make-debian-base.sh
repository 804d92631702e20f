#!/bin/bash
# Make a local base image for a Dockerfile's FROM, on machines with no image registry: debootstrap
# a minbase system (cached in /var/cache/dockersh-test) and `docker import` it (ENGINE_CLI=podman:
# `podman import`). Does nothing when the image already exists. Needs a running dockerd (or
# Podman); root.
#
#   make-debian-base.sh          debian:bookworm-slim (the session image's base)
#   make-debian-base.sh noble    ubuntu:noble, Ubuntu 24.04 (tests/hosts/run's ubuntu kind), from
#                                Ubuntu's own mirror; its keyring comes from that mirror too
set -euo pipefail

release=${1:-bookworm}
case $release in
    bookworm)
        image=debian:bookworm-slim mirror=http://deb.debian.org/debian
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        ;;
    noble)
        image=ubuntu:noble mirror=http://archive.ubuntu.com/ubuntu
        keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg
        ;;
    *) echo "usage: $0 [bookworm|noble]" >&2; exit 2 ;;
esac
cache=/var/cache/dockersh-test
rootfs=$cache/$release-minbase

cli=${ENGINE_CLI:-docker}
if "$cli" image inspect "$image" >/dev/null 2>&1; then
    echo "make-debian-base: $image already exists"
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9        # two test runs at once: the second waits, then finds the cache ready

# ubuntu_keyring: Ubuntu's archive keyring, from the ubuntu-keyring package on Ubuntu's mirror
# (Debian 12 does not package it).
ubuntu_keyring() {
    local dir=$cache/ubuntu-keyring
    [ -f "$dir$keyring" ] && return
    rm -rf "$dir" && mkdir -p "$dir"
    /usr/bin/python3 - "$mirror" "$dir/keyring.deb" <<'PY'
import gzip, sys, urllib.request
mirror, dest = sys.argv[1:]
index = gzip.decompress(urllib.request.urlopen(
    f"{mirror}/dists/noble/main/binary-amd64/Packages.gz", timeout=60).read()).decode()
entry = next(e for e in index.split("\n\n") if e.startswith("Package: ubuntu-keyring\n"))
path = next(line.split()[1] for line in entry.splitlines() if line.startswith("Filename:"))
urllib.request.urlretrieve(f"{mirror}/{path}", dest)
PY
    dpkg-deb -x "$dir/keyring.deb" "$dir"
}

if [ ! -d "$rootfs" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
    args=("$release" "$rootfs.tmp" "$mirror")
    if [ "$release" = noble ]; then
        ubuntu_keyring
        # Debian 12's debootstrap has no script named noble; gutsy's serves every Ubuntu release.
        args=("--keyring=$cache/ubuntu-keyring$keyring" "$release" "$rootfs.tmp" "$mirror"
              /usr/share/debootstrap/scripts/gutsy)
    fi
    rm -rf "$rootfs.tmp"
    echo "make-debian-base: debootstrap $release into $rootfs (about a minute)"
    debootstrap --variant=minbase "${args[@]}" >"$cache/debootstrap-$release.log"
    # Like the real image: no package files or lists left, updates and security in the sources.
    rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/lib/apt/lists/* \
        "$rootfs.tmp/etc/apt/sources.list"
    if [ "$release" = bookworm ]; then
        cat >"$rootfs.tmp/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: $keyring

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: $keyring
SOURCES
    else
        cat >"$rootfs.tmp/etc/apt/sources.list.d/ubuntu.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: noble noble-updates noble-security
Components: main universe
Signed-By: $keyring
SOURCES
    fi
    mv "$rootfs.tmp" "$rootfs"
fi

tar --numeric-owner -C "$rootfs" -c . | "$cli" import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "make-debian-base: imported $image from $rootfs"
