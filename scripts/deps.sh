#!/bin/sh
# Installs, with apt-get, every Debian package that building and testing
# mcp-bridge needs and that is not installed yet. Called by `make deps` and
# before the first build, so a fresh Debian 12 machine needs nothing by hand.
# prometheus brings promtool, which the tests run on /metrics and on the
# Grafana dashboard's queries. nodejs and npm run tests/interop.
set -eu

PACKAGES="
gcc make pkg-config
libwebsockets-dev libwebsockets-evlib-ev libev-dev
libcjson-dev libyaml-dev libmemcached-dev libssl-dev
libcriterion-dev
memcached openssl mandoc clang-format
prometheus
nodejs
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# tests/interop runs under Node and installs its npm packages with npm.
# Debian ships npm as a package of its own, but NodeSource's nodejs bundles
# npm and conflicts with Debian's, so npm is asked for only when no npm
# command exists.
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "deps: need root (or sudo) to install:$missing" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
