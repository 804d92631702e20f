#!/usr/bin/env bash
# Builds the tiny test image (default dockersh-test/busybox:latest) from Debian's busybox-static:
# no registry is needed, and a container of it starts in well under a second.
# The image carries the sha256 of this script as a label, so the test fixtures rebuild it only
# when this script changes.
set -euo pipefail

image=${1:-dockersh-test/busybox:latest}
busybox=/bin/busybox
label_key=dockersh.test.source-sha256
sha=$(sha256sum "$0" | cut -d' ' -f1)

if ! "$busybox" --list-full >/dev/null 2>&1; then
  echo "make-busybox: $busybox is missing: apt-get install busybox-static" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,home,root,run,tmp,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
install -m 0755 "$busybox" "$root/bin/busybox"

# Every applet at its usual path (bin/sh, usr/bin/env, ...), as a link to the one binary.
"$busybox" --list-full | while read -r applet; do
  case $applet in
    */*) [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet" ;;
  esac
done

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF

tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
  docker import \
    --change 'CMD ["sleep","infinity"]' \
    --change "LABEL $label_key=$sha" \
    - "$image" >/dev/null
echo "make-busybox: built $image" >&2
