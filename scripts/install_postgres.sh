#!/usr/bin/env bash
# PostgreSQL's server binaries for tunetrack's tests and for trying `tunetrack server` on
# PostgreSQL: nothing to do when initdb is already there; else Debian's package (apt-get) when
# this runs as root or with password-less sudo. Exits 1 with the reason when it cannot.
set -euo pipefail
found() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null 2>&1
}
if found; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL is not installed and there is no apt-get here: install PostgreSQL's server (initdb, pg_ctl) yourself" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "PostgreSQL is not installed and installing it needs root: sudo apt-get install -y postgresql" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
found || { echo "apt-get installed postgresql but initdb is still missing" >&2; exit 1; }
