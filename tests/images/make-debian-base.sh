#!/bin/bash
# Make a local debian:bookworm-slim image for the Dockerfile's FROM, on machines with no image
# registry: debootstrap a minbase bookworm (cached in /var/cache/dockersh-test) and
# `docker import` it (ENGINE_CLI=podman: `podman import`). Does nothing when the image already
# exists. Needs a running dockerd (or Podman); root.
set -euo pipefail

image=debian:bookworm-slim
cache=/var/cache/dockersh-test
rootfs=$cache/bookworm-minbase

cli=${ENGINE_CLI:-docker}
if "$cli" image inspect "$image" >/dev/null 2>&1; then
    echo "make-debian-base: $image already exists"
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9        # two test runs at once: the second waits, then finds the cache ready

if [ ! -d "$rootfs" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
    rm -rf "$rootfs.tmp"
    echo "make-debian-base: debootstrap bookworm into $rootfs (about 30 s)"
    debootstrap --variant=minbase bookworm "$rootfs.tmp" http://deb.debian.org/debian >"$cache/debootstrap.log"
    # Like the real image: no package files or lists left, updates and security in the sources.
    rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/lib/apt/lists/* \
        "$rootfs.tmp/etc/apt/sources.list"
    cat >"$rootfs.tmp/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    mv "$rootfs.tmp" "$rootfs"
fi

tar --numeric-owner -C "$rootfs" -c . | "$cli" import --change 'CMD ["bash"]' - "$image" >/dev/null
echo "make-debian-base: imported $image from $rootfs"
