#!/usr/bin/env bash
# Set up and run the whole test suite: lint, then pytest. Extra arguments go to pytest.
# Without arguments, pytest runs over every core (pytest-xdist); the few tests whose outcome depends
# on the machine's load or on who runs them (marked `scheduling`: the sandbox's limits, identities
# and kills) then run twice more, both at once beside busy CPUs: as this user, and (when run as
# root) as an ordinary user, whose grading sandbox is a user namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/install-debian-packages.sh

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
run_pass "the full run" python -m pytest -n auto --dist loadgroup --durations=25

# The scheduling passes, one after the other: beside busy CPUs, then as an ordinary user (run at
# once, each would see the other's grading runs come and go).
echo "== The tests marked scheduling again, with every CPU busy"
run_pass "with busy CPUs" \
  python scripts/cpu-hogs.py --max-seconds 1800 -- python -m pytest -m scheduling
if [ "$(id -u)" -eq 0 ]; then
  echo "== The tests marked scheduling again, as an ordinary user"
  run_pass "as an ordinary user" bash scripts/test-classgrade-as-user.sh
fi
if [ ${#failed[@]} -gt 0 ]; then
  printf '== Failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
