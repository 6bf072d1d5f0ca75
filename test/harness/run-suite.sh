#!/usr/bin/env bash
# Runs the compiled tests with node's built-in runner. Fails when it finds no test files: a suite
# that ran nothing is red.
#
#   run-suite.sh           every test: unit tests beside the code, integration and e2e under test/
#                          (as root: real containers, mounts, cgroups, etcd, NATS), plus formatting
#   run-suite.sh --unit    the unit tests beside the code only: no root, etcd, NATS or network
#                          (tests that need them live under test/); the quick lane while working
set -euo pipefail
cd "$(dirname "$0")/../.."
lane=all
if [ "${1:-}" = --unit ]; then
  lane=unit
  shift
fi
# the suite runs on the Node.js the set-up installed (cli/node-runtime.sh), whatever `node` is
source cli/node-runtime.sh
skiff_use_node || exit 1
# Only tests whose TypeScript source still exists: dist/ is never cleaned, and a test compiled from
# a file since deleted or renamed must not keep running.
files=()
while IFS= read -r compiled; do
  source_file="${compiled#dist/}"
  [ "$lane" = unit ] && [[ "$compiled" == dist/test/* ]] && continue
  [ -f "${source_file%.js}.ts" ] && files+=("$compiled")
done < <(find dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "run-suite: no test files under dist/ (did the build run?)" >&2
  exit 1
fi
if [ "$lane" = all ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "run-suite: the suite runs real containers, mounts and cgroups and must run as root (\`npm run test:unit\` needs no root)" >&2
    exit 1
  fi
  # formatting is part of the suite, like the type check the build already does
  npx --no-install prettier --check --log-level warn . || {
    echo "run-suite: files above are not formatted: run \`npm run format\`" >&2
    exit 1
  }
fi
exec node --test --test-reporter=spec --test-timeout=300000 "$@" "${files[@]}"
