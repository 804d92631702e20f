#!/bin/sh
# Refresh the vendored browser files of `dockersh web` from npm (package.json, package-lock.json
# pin them). Fresh hosts have no node: the copies in ../static/vendor/ are committed, and this
# script is only for the maintainer who bumps a version. Run from anywhere; needs npm.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
out=../static/vendor
mkdir -p "$out"
cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css \
    node_modules/@xterm/addon-fit/lib/addon-fit.js "$out/"
cp node_modules/@xterm/xterm/LICENSE "$out/LICENSE.xterm"
rm -rf node_modules
echo "refreshed $out from npm"
