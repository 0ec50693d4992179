#!/bin/sh
# The main job on the real sample bundled in the package: install, then `tapewatch demo`.
set -eu
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e .
exec .venv/bin/tapewatch demo "$@"
