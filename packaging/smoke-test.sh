#!/usr/bin/env bash
# Smoke test of the Linux CPU desktop bundle: builds it when the archive is missing or older than
# the code, resources, spec or pyproject.toml (packaging/build-desktop.sh cpu), then runs
# packaging/smoke_test.py on the archive. The test side uses the checkout's .venv (make test makes
# it; PYTHON_CHECK overrides); the bundle itself runs with a bare environment.
# Environment: REBUILD=1 forces the build; START_RUNS (default 3) cold-start runs during the build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON_CHECK="${PYTHON_CHECK:-$ROOT/.venv/bin/python}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' waferdesk/__init__.py)"
ARCHIVE="dist/WaferDesk-$VERSION-linux-x86_64-cpu.tar.gz"
if [[ "${REBUILD:-0}" == 1 || ! -f "$ARCHIVE" ]] ||
  [[ -n "$(find waferdesk resources packaging pyproject.toml -newer "$ARCHIVE" -type f -not -name '*.pyc' -print -quit)" ]]; then
  T0=$(date +%s)
  START_RUNS="${START_RUNS:-3}" packaging/build-desktop.sh cpu
  echo "bundle built in $(( $(date +%s) - T0 )) s"
else
  echo "using $ARCHIVE (newer than the sources; REBUILD=1 rebuilds)"
fi
"$PYTHON_CHECK" packaging/smoke_test.py "$ARCHIVE"
