#!/usr/bin/env bash
# Run the tests whose outcome depends on who runs them (marked `scheduling`: the sandbox's
# limits, identities and kills) as an ordinary user, where classgrade's sandbox runs in a user
# namespace (bwrap --unshare-user) instead of dropping root.
# They run over every core (pytest-xdist, grouped as the full run's: tests/conftest.py).
# Arguments, if any, go to pytest instead of that default selection
# (e.g. tests/test_classgrade_units.py -x).
#
# Run by an ordinary user: runs the tests in place, with the Python found on PATH.
# Run as root: creates (once) the system user $CLASSGRADE_TEST_USER (default classgrade-ci),
# copies this checkout into that user's home, and runs the tests there as that user in a virtual
# environment in $CLASSGRADE_TEST_PREFIX (default /opt/classgrade-ci) made from Debian's
# python3.11 (the default Python may live under root's 0700 home) and holding the packages of
# .venv, which scripts/setup.sh installed from the pinned requirements.txt: hard links to them
# (a copy across file systems), not a second install.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/env.sh
if [ $# -gt 0 ]; then
  tests=("$@")
else
  tests=(-m scheduling -n auto --dist loadgroup)
fi

# The sandbox of an ordinary user needs unprivileged user namespaces; say why they fail.
check_user_namespaces() {
  if ! "$@" bwrap --unshare-user --unshare-pid --unshare-net --ro-bind / / true; then
    echo "bubblewrap cannot create a user namespace as $("$@" id -un); the kernel settings:" >&2
    for knob in user.max_user_namespaces kernel.unprivileged_userns_clone \
      kernel.apparmor_restrict_unprivileged_userns; do
      sysctl "$knob" >&2 2>/dev/null || true
    done
    exit 1
  fi
}

if [ "$(id -u)" -ne 0 ]; then
  check_user_namespaces
  exec python -m pytest "${tests[@]}"
fi

user=${CLASSGRADE_TEST_USER:-classgrade-ci}
prefix=${CLASSGRADE_TEST_PREFIX:-/opt/classgrade-ci}
python=${CLASSGRADE_TEST_PYTHON:-/usr/bin/python3.11}

# 1. The user: a system account with its own home, no login shell.
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --create-home --home-dir "/var/lib/$user" --shell /usr/sbin/nologin \
    --user-group "$user"
fi
home=$(getent passwd "$user" | cut -d: -f6)
group=$(id -gn "$user")
[ -d "$home" ] || install -d -o "$user" -g "$group" -m 0755 "$home"

# One run of this script at a time on the machine: each remakes the copy and the environment
# below, which another run may be using. The tests' process inherits the lock (read-only).
install -d -m 0755 "$prefix"
: >>"$prefix/run.lock"
exec {lock}<"$prefix/run.lock"
if ! flock -w 3600 "$lock"; then
  echo "another run of $0 held $prefix/run.lock for an hour" >&2
  exit 1
fi

# 2. A copy of the checkout the user owns (the checkout itself may sit under a 0700 home).
#    Made afresh each run, at a fixed path: the environment below installs it in editable mode.
checkout="$home/checkout"
rm -rf "$checkout"
install -d -o "$user" -g "$group" -m 0755 "$checkout"
tar -C . -cf - \
  --exclude=./.git --exclude=./.venv --exclude=./_build --exclude='*.egg-info' \
  --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis --exclude=.ruff_cache \
  . | tar -C "$checkout" --no-same-owner -xf -

# 3. The environment, owned by root and readable by everyone, from an interpreter the user can
#    run, with the packages of .venv (installed by scripts/setup.sh from the pinned
#    requirements.txt). Rebuilt when .venv changed; otherwise reused as it is.
main_venv="$PWD/.venv"
venv="$prefix/venv"
if ! runuser -u "$user" -- "$python" -c '' 2>/dev/null; then
  echo "$python cannot be run by $user (install python3.11 and python3.11-venv)" >&2
  exit 1
fi
version='import sys; print("%d.%d" % sys.version_info[:2])'
if [ "$("$python" -c "$version")" != "$("$main_venv/bin/python" -c "$version")" ]; then
  echo "$python is not the Python version of $main_venv: set CLASSGRADE_TEST_PYTHON" >&2
  exit 1
fi
stamp="$venv/.requirements.sha256"
wanted=$( (cat "$main_venv/.requirements.sha256"; echo "$checkout $python") | sha256sum |
  cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  rm -rf "$venv"
  install -d -m 0755 "$prefix"
  (
    umask 022
    "$python" -m venv --without-pip "$venv"
    purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])'
    from=$("$main_venv/bin/python" -c "$purelib")
    to=$("$venv/bin/python" -c "$purelib")
    # Hard links where both share a file system (nothing is copied or written: pip and Python
    # replace files, never rewrite them); a copy otherwise.
    # (A failed linking is undone before copying: a copy onto a link would write into .venv.)
    link_or_copy() {
      if ! cp -al "$1/." "$2/" 2>/dev/null; then
        rm -rf "$2" && mkdir -p "$2" && cp -a "$1/." "$2/"
      fi
    }
    link_or_copy "$from" "$to"
    for data in etc share; do
      [ ! -d "$main_venv/$data" ] || link_or_copy "$main_venv/$data" "$venv/$data"
    done
    # The commands (nbgrader runs alembic from here): each script's interpreter line names
    # .venv's Python; here it names this environment's. The new venv's own files are kept.
    for script in "$main_venv"/bin/*; do
      name=${script##*/}
      [ ! -e "$venv/bin/$name" ] || continue
      first=
      IFS= read -r first <"$script" || true
      if [ "$first" = "#!$main_venv/bin/python" ]; then
        { echo "#!$venv/bin/python" && tail -n +2 "$script"; } >"$venv/bin/$name"
        chmod 0755 "$venv/bin/$name"
      else
        cp -a "$script" "$venv/bin/$name"
      fi
    done
    # The course's packages, installed in editable mode from the user's copy (the install
    # replaces the one that points at this checkout).
    "$venv/bin/python" -m pip install --quiet --no-deps --editable "$checkout"
    "$venv/bin/python" -m pip check
  )
  echo "$wanted" >"$stamp"
fi
# The editable install writes its metadata into the copy: hand everything to the user.
chown -R "$user:$group" "$checkout"

check_user_namespaces runuser -u "$user" --

# 4. The tests, as the user, in a clean environment with the venv first on PATH (nbgrader
#    runs alembic from there as a subprocess).
echo "Running ${tests[*]} as $user ($(runuser -u "$user" -- id)) in $checkout"
cd "$checkout"
exec runuser -u "$user" -- env -i \
  HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 \
  PATH="$venv/bin:/usr/local/bin:/usr/bin:/bin" \
  TF_CPP_MIN_LOG_LEVEL="$TF_CPP_MIN_LOG_LEVEL" TF_ENABLE_ONEDNN_OPTS="$TF_ENABLE_ONEDNN_OPTS" \
  "$venv/bin/python" -m pytest "${tests[@]}"
