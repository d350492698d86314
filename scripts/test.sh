#!/usr/bin/env bash
# Set up and run the whole test suite: lint, then pytest. Extra arguments go to pytest.
# Without arguments, the grading tests whose outcome depends on the machine's load or on who runs
# them (marked `sandbox`: the sandbox's limits, identities and kills) then run twice more: beside
# busy CPUs, and (when run as root) as an ordinary user, whose grading sandbox is a user namespace.
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

# Every pass runs even if an earlier one fails; the script then fails, naming them.
failed=()
python -m pytest --durations=25 || failed+=("the full run")
grading_tests=(-m sandbox tests/test_classgrade_*.py)
echo "== The sandbox's grading tests again, with every CPU busy"
python scripts/cpu-hogs.py --max-seconds 1800 -- python -m pytest "${grading_tests[@]}" ||
  failed+=("with busy CPUs")
if [ "$(id -u)" -eq 0 ]; then
  echo "== The sandbox's grading tests again, as an ordinary user"
  bash scripts/test-classgrade-as-user.sh || failed+=("as an ordinary user")
fi
if [ ${#failed[@]} -gt 0 ]; then
  printf '== Failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
