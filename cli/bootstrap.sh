#!/usr/bin/env bash
# Set-up shared by `npm start` and `npm test`: installs what is missing on a fresh Debian machine
# (Node.js 24, apt packages, npm packages), builds, and links the `skiff` binary onto the PATH.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'skiff setup: %s\n' "$*" >&2; }

# where `skiff` is linked: the global bin of the machine's own npm, asked before the PATH changes
# (npm run on the pinned Node would name the pinned Node's directory)
global_bin="$(npm prefix -g 2>/dev/null || echo /usr/local)/bin"

# Node.js 24 first: npm, the build and everything after run on it
source cli/node-runtime.sh
skiff_use_node || exit 1

# apt: package -> a file that proves it is installed
declare -A apt_needs=(
  [etcd-server]=/usr/bin/etcd
  [etcd-client]=/usr/bin/etcdctl
  [nats-server]=/usr/sbin/nats-server
  [busybox-static]=/bin/busybox
  [iproute2]=/usr/bin/ip
  # the pod network (node-agent/runtime/net): the node's nftables table, sysctls in a host namespace
  [nftables]=/usr/sbin/nft
  [procps]=/usr/sbin/sysctl
  [gcc]=/usr/bin/gcc
  [make]=/usr/bin/make
  [libc6-dev]=/usr/include/linux/openat2.h
  [openssl]=/usr/bin/openssl
  # the registry client's interop tests and benchmark: the reference registry, a second client,
  # htpasswd for the registry's basic auth
  [docker-registry]=/usr/bin/docker-registry
  [skopeo]=/usr/bin/skopeo
  [apache2-utils]=/usr/bin/htpasswd
  # the registry server's interop tests and benchmark (skopeo and docker-registry as above)
  [curl]=/usr/bin/curl
  # cluster DNS (node-agent/dns): dig checks the server in tests; the DNS benchmark's load
  # generator and its reference server
  [bind9-dnsutils]=/usr/bin/dig
  [dnsperf]=/usr/bin/dnsperf
  [unbound]=/usr/sbin/unbound
  # the Service throughput benchmark's load generator (test/bench/service-throughput.ts)
  [wrk]=/usr/bin/wrk
)
missing=()
for pkg in "${!apt_needs[@]}"; do
  [ -e "${apt_needs[$pkg]}" ] || missing+=("$pkg")
done
# busybox (dynamic) also provides /bin/busybox; the test images need the static build.
if [ -e /bin/busybox ] && ! dpkg -s busybox-static >/dev/null 2>&1; then missing+=(busybox-static); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing system packages: ${missing[*]}; run as root or: apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm: install when node_modules is missing or older than the lockfile
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

say "building"
npm run --silent build

# put `skiff` on the PATH (the package's bin entry, linked like `npm link` does)
if [ -w "$global_bin" ] || [ "$(id -u)" = 0 ]; then
  mkdir -p "$global_bin"
  ln -sf "$PWD/dist/bin/skiff.cjs" "$global_bin/skiff"
fi
