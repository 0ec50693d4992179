#!/bin/sh
# The whole test suite from a fresh clone: a virtual environment with the package and its test
# extras, Debian's Chromium for the browser tests (report, dashboard), then pytest on 2 workers.
set -eu
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e '.[test]'
if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
exec .venv/bin/python -m pytest -n 2 "$@"
