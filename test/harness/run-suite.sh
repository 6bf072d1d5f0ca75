#!/usr/bin/env bash
# Runs the compiled tests with node's built-in runner. Fails when it finds no test files: a suite
# that ran nothing is red.
#
#   run-suite.sh           every test: unit tests beside the code, integration and e2e under test/
#                          (as root: real containers, mounts, cgroups, etcd, NATS), plus formatting
#   run-suite.sh --unit    the unit tests beside the code only: no root, etcd, NATS or network
#                          (tests that need them live under test/); the quick lane while working
#
# Test files run in groups, each a `node --test` run with spec output:
#   concurrent     every file not listed below, several at a time (SKIFF_TEST_CONCURRENCY in all,
#                  default twice the CPUs: most files wait on etcd, processes and the disk more
#                  than on the CPU). Such a file shares nothing with another: its own temp dirs
#                  (mkdtemp), servers on ports the kernel picks (test/harness/servers.ts), its own
#                  runtime root, cgroups, mounts and veths named by what it created.
#   one-at-a-time  the files in UP_FILES, one after another beside the concurrent ones (their
#                  output follows), but only when another process on the machine holds one of the
#                  ports `skiff up` prefers; otherwise they are concurrent files (see UP_FILES).
#   alone          the files in ALONE, one at a time, once the others have finished: they use or
#                  measure state of the whole machine.
# Every group runs whatever another's result; the suite fails when any does, and the total of all
# of them is printed last. Other arguments go to every `node --test` run (e.g.
# --test-name-pattern).
set -euo pipefail
cd "$(dirname "$0")/../.."
lane=all
if [ "${1:-}" = --unit ]; then
  lane=unit
  shift
fi

# Test files by their TypeScript sources (patterns as in `case`). Make a file independent rather
# than adding it here.

# Files that start clusters with `skiff up`, which prefers fixed ports (etcd 2379/2380, NATS
# 4222/8222, API 7440, HTTP 7441): two ups at once can choose the same port, and one then probes the
# other's server and takes it for its own ("control plane ready at 127.0.0.1:7440", then no admin
# token), a race of `skiff up` itself; up-foreground.test.ts also asserts that its cluster avoided
# those ports. While the suite runs, test/harness/hold-ports.ts holds them, so every up takes ports
# the kernel picks and these files are concurrent ones. When another process already holds one
# (someone's cluster on this machine), it may free it mid-run: then they run one at a time.
UP_FILES=(
  'test/e2e/*.test.ts'
)
# Files that run alone, each saying what it shares.
ALONE=(
  # Counts the machine's memory cgroups (/proc/cgroups, dying ones included) around 80 container
  # runs, which the containers of any other file change, and drops the page cache of the whole
  # machine (/proc/sys/vm/drop_caches) first.
  'test/integration/runtime-containers-images.test.ts'
)

# the suite runs on the Node.js the set-up installed (cli/node-runtime.sh), whatever `node` is
source cli/node-runtime.sh
skiff_use_node || exit 1
# Only tests whose TypeScript source still exists: dist/ is never cleaned, and a test compiled from
# a file since deleted or renamed must not keep running.
concurrent=()
up_files=()
alone=()
# matches SOURCE PATTERN…: whether SOURCE matches one of the patterns
matches() {
  local source="$1" pattern
  shift
  for pattern in "$@"; do
    # shellcheck disable=SC2053 # the pattern is a glob on purpose
    [[ "$source" == $pattern ]] && return 0
  done
  return 1
}
while IFS= read -r compiled; do
  source_file="${compiled#dist/}"
  source_file="${source_file%.js}.ts"
  [ "$lane" = unit ] && [[ "$compiled" == dist/test/* ]] && continue
  [ -f "$source_file" ] || continue
  if matches "$source_file" "${ALONE[@]}"; then
    alone+=("$compiled")
  elif matches "$source_file" "${UP_FILES[@]}"; then
    up_files+=("$compiled")
  else
    concurrent+=("$compiled")
  fi
done < <(find dist -name '*.test.js' -not -path '*/node_modules/*' | sort)
total_files=$((${#concurrent[@]} + ${#up_files[@]} + ${#alone[@]}))
if [ $total_files -eq 0 ]; then
  echo "run-suite: no test files under dist/ (did the build run?)" >&2
  exit 1
fi
if ! [ -f dist/test/harness/summary-reporter.js ] || ! [ -f dist/test/harness/suite-summary.js ] ||
  ! [ -f dist/test/harness/hold-ports.js ]; then
  echo "run-suite: dist/test/harness/ is not built (did the build run?)" >&2
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

concurrency="${SKIFF_TEST_CONCURRENCY:-$(($(nproc) * 2))}"
if ! [[ "$concurrency" =~ ^[1-9][0-9]*$ ]]; then
  echo "run-suite: SKIFF_TEST_CONCURRENCY must be a whole number of test files, 1 or more (got \"$concurrency\")" >&2
  exit 1
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/skiff-run-suite-XXXXXX")"
# The `node --test` runs go in the background and are waited for, so that an interrupt reaches
# the traps at once (bash runs a trap only after a foreground command ends) and stops them all.
running=
beside=
holder=
stop_all() {
  local pid
  for pid in $running $beside $holder; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $running $beside $holder; do wait "$pid" 2>/dev/null || true; done
}
# Clusters the e2e files bring up with `skiff up --detach` outlive a test process that is killed
# (an interrupt, a timeout) before its clean-up: test/e2e/cli-harness.ts lists each state dir
# here before its `up`, and what is still there at the end is taken down (`down` is harmless twice).
export SKIFF_TEST_CLUSTER_LIST="$work/clusters"
down_leftover_clusters() {
  local dir
  [ -f "$SKIFF_TEST_CLUSTER_LIST" ] || return 0
  while IFS= read -r dir; do
    [ -f "$dir/cluster.json" ] || continue
    echo "run-suite: taking down a cluster a test left running: $dir" >&2
    node dist/bin/skiff.cjs down --state "$dir" >/dev/null 2>&1 || true
  done <"$SKIFF_TEST_CLUSTER_LIST"
}
# Multi-host labs (test/harness/hosts.ts: network namespaces, a veth, cgroups) are removed by their
# tests, and by the next lab made on this machine when a test process died first; what a killed
# file left is removed here too, as a last resort (labs of processes still running are kept).
sweep_abandoned_labs() {
  [ "$(id -u)" = 0 ] && [ -f dist/test/harness/sweep-labs.js ] || return 0
  node dist/test/harness/sweep-labs.js || true
}
trap 'stop_all; down_leftover_clusters; sweep_abandoned_labs; rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
failed=0
groups=()

# start_group NAME FILES-AT-ONCE ARGUMENTS-AND-FILES…: starts one `node --test` run in the
# background, spec output on stdout; its summary goes to $work/NAME.jsonl for the total
start_group() {
  local name="$1" at_once="$2"
  shift 2
  groups+=("$name=$work/$name.jsonl")
  node --test --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=./dist/test/harness/summary-reporter.js \
    --test-reporter-destination="$work/$name.jsonl" \
    --test-timeout=300000 --test-concurrency="$at_once" "$@" &
}

# run_group NAME FILES-AT-ONCE ARGUMENTS-AND-FILES…: start_group, and wait for it
run_group() {
  start_group "$@"
  running=$!
  wait "$running" || failed=1
  running=
}

started=$SECONDS
taken_ports=
if [ ${#up_files[@]} -gt 0 ]; then
  node dist/test/harness/hold-ports.js "$work/ports" &
  holder=$!
  for _ in $(seq 100); do
    [ -s "$work/ports" ] || ! kill -0 "$holder" 2>/dev/null && break
    sleep 0.1
  done
  if ! [ -s "$work/ports" ]; then
    echo "run-suite: test/harness/hold-ports.ts did not start" >&2
    exit 1
  fi
  { read -r _ held_ports && read -r _ taken_ports; } <"$work/ports" || true
  echo "run-suite: holding the ports \`skiff up\` prefers while the tests run: ${held_ports:-none}"
fi
if [ -n "$taken_ports" ]; then
  echo "run-suite: another process holds $taken_ports: the ${#up_files[@]} test files of UP_FILES run one at a time"
  start_group one-at-a-time 1 "$@" "${up_files[@]}" >"$work/one-at-a-time.out" 2>&1
  beside=$!
  concurrency=$((concurrency > 1 ? concurrency - 1 : 1))
else
  concurrent+=("${up_files[@]}")
fi
if [ ${#concurrent[@]} -gt 0 ]; then
  echo "run-suite: ${#concurrent[@]} test files, up to $concurrency at a time"
  run_group concurrent "$concurrency" "$@" "${concurrent[@]}"
fi
if [ -n "$beside" ]; then
  echo "run-suite: ${#up_files[@]} test files one at a time, beside those:"
  wait "$beside" || failed=1
  beside=
  cat "$work/one-at-a-time.out"
fi
if [ ${#alone[@]} -gt 0 ]; then
  echo "run-suite: ${#alone[@]} test files alone, one at a time, after the others (ALONE in $0)"
  run_group alone 1 "$@" "${alone[@]}"
fi
node dist/test/harness/suite-summary.js "${groups[@]}" || failed=1
echo "run-suite: $total_files test files in $((SECONDS - started)) s"
exit $failed
