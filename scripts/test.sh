#!/usr/bin/env bash
# Set up and run the whole test suite: lint, then pytest. Extra arguments go to pytest.
# Without arguments, pytest runs over every core (pytest-xdist); the few tests whose outcome depends
# on the machine's load or on who runs them (marked `scheduling`: the sandbox's limits, identities
# and kills) are left out of it and run in two passes after it, both at once beside busy CPUs,
# each over every core: as this user, and (when run as root) as an ordinary user, whose grading
# sandbox is a user namespace. (Not as root, the second pass is the same user: it is skipped.)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/install-debian-packages.sh
tests_started=$SECONDS

# nbgrader runs alembic from the environment's bin as a subprocess.
export PATH="$PWD/.venv/bin:$PATH"
source scripts/env.sh

ruff check .
ruff format --check .
# The packages listed in pyproject.toml's [tool.mypy] files.
mypy
[ $# -eq 0 ] || exec python -m pytest "$@"

# Every pass runs even if an earlier one fails; the script then fails, naming them. Each pass
# says how long it took.
failed=()
run_pass() {
  local name=$1 started=$SECONDS
  shift
  "$@" || failed+=("$name")
  echo "== $name: $((SECONDS - started)) s"
}
# Over every core (pytest-xdist). Tests sharing an artefact made once per process (the site's
# build, a graded course, the PostgreSQL server) share a worker: tests/conftest.py groups them.
# The tests marked scheduling run in the passes below instead: on a machine busier than this.
run_pass "the full run" python -m pytest -n auto --dist loadgroup -m "not scheduling" --durations=25

# The scheduling passes, at once and each over every core, beside CPUs kept busy throughout: as
# this user, and (when run as root) as an ordinary user. Each is the only run of those tests
# as its user. A run's test looks only at its own
# processes and scratch folders, whoever else grades meanwhile. Each pass's output is shown,
# whole, when it ends.
passes=$(mktemp -d)
python scripts/cpu-hogs.py --max-seconds 1800 &
hogs=$!
trap 'kill -TERM "$hogs" 2>/dev/null || true; rm -rf "$passes"' EXIT
names=() pids=()
start_pass() {
  local log=$passes/${#names[@]}
  names+=("$1")
  shift
  (
    started=$SECONDS status=0
    "$@" >"$log.out" 2>&1 || status=$?
    echo "$status $((SECONDS - started))" >"$log.status"
  ) &
  pids+=($!)
}
echo "== The tests marked scheduling, with every CPU busy (output when the pass ends)"
start_pass "with busy CPUs" python -m pytest -m scheduling -n auto --dist loadgroup
if [ "$(id -u)" -eq 0 ]; then
  echo "== ... and at the same time as an ordinary user (output when the pass ends)"
  start_pass "as an ordinary user" bash scripts/test-classgrade-as-user.sh
fi
for i in "${!names[@]}"; do
  wait "${pids[$i]}" || true
  echo "== ${names[$i]}:"
  cat "$passes/$i.out"
  status=1 seconds=?
  [ ! -s "$passes/$i.status" ] || read -r status seconds <"$passes/$i.status"
  [ "$status" -eq 0 ] || failed+=("${names[$i]}")
  echo "== ${names[$i]}: $seconds s"
done
kill -TERM "$hogs" && wait "$hogs" || true

echo "== the tests (lint, the full run and the passes, set-up aside): $((SECONDS - tests_started)) s"
if [ ${#failed[@]} -gt 0 ]; then
  printf '== Failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
