#!/usr/bin/env bash
# Debian packages the tests need: a browser for the site tests, CJK fonts for its screenshots,
# bubblewrap for the grading sandbox, and a Python 3.11 with venv that an ordinary user can run
# (for scripts/test-classgrade-as-user.sh), and PostgreSQL, whose binaries the tests start in a
# temporary folder (initdb, pg_ctl; never the system service). Installs only what is missing.
set -euo pipefail

packages=(chromium fonts-noto-cjk bubblewrap python3.11 python3.11-venv postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
