#!/usr/bin/env bash
# Build the WaferDesk desktop bundle for Linux:
#
#   packaging/build-desktop.sh [cpu|gpu]      -> dist/WaferDesk-<version>-linux-x86_64-<variant>.tar.gz
#
# 1. A build environment of its own, build/venv-<variant> (re-made when pyproject.toml changes):
#    the app's extra and nothing else ('.[desktop]' = app + onnxruntime for cpu, '.[desktop-gpu]' =
#    app + onnxruntime-gpu with its CUDA/cuDNN wheels for gpu; never both) plus PyInstaller. No
#    torch, no server stack: what is not installed cannot leak into the bundle, and a build that
#    works proves the desktop extra is enough.
# 2. PyInstaller with packaging/waferdesk.spec (one folder), from this checkout's code.
# 3. packaging/check_bundle.py: no forbidden package inside, every required file there, size.
# 4. The archive, then packaging/measure_start.py unpacks it and times the cold start.
# Environment: PYTHON (default python3; a CPython 3.11+ built with a shared libpython),
# START_RUNS (cold start runs, default 5; 0 skips the measurement).
set -euo pipefail

VARIANT="${1:-cpu}"
case "$VARIANT" in
  cpu) EXTRA=desktop; BUDGET_MB=450 ;;
  gpu) EXTRA=desktop-gpu; BUDGET_MB= ;;
  *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
PYINSTALLER_VERSION=6.22.3
START_RUNS="${START_RUNS:-5}"
VENV="build/venv-$VARIANT"
WORK="build/$VARIANT"
T0=$(date +%s)
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# -- 1. the build environment -------------------------------------------------------------
STAMP="$(sha256sum pyproject.toml | cut -c1-16) $VARIANT pyinstaller==$PYINSTALLER_VERSION"
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.waferdesk-stamp" 2>/dev/null)" != "$STAMP" ]]; then
  echo "== build environment $VENV: '.[$EXTRA]' pyinstaller==$PYINSTALLER_VERSION"
  rm -rf "$VENV"
  mkdir -p "$WORK"
  "$PYTHON" -m venv "$VENV"
  "${PIP[@]}" install --upgrade pip > /dev/null 2>&1 || echo "   (pip not upgraded; continuing with $("${PIP[@]}" --version))"
  PKGS=(".[$EXTRA]" "pyinstaller==$PYINSTALLER_VERSION")
  if [[ "$VARIANT" == gpu ]]; then
    # CUDA runtime, cuBLAS, cuFFT, cuRAND, NVRTC and cuDNN as pip wheels, for the CUDA major version
    # onnxruntime-gpu was built with (13 for 1.31), at the version the gpu extra pins
    ORT_GPU="$(grep -o '"onnxruntime-gpu==[^"]*"' pyproject.toml | tr -d '"')"
    PKGS+=("${ORT_GPU/onnxruntime-gpu/onnxruntime-gpu[cuda,cudnn]}")
  fi
  if ! "${PIP[@]}" install "${PKGS[@]}" > "$WORK/pip.log" 2>&1; then
    cat "$WORK/pip.log" >&2
    echo "pip install failed (log: $WORK/pip.log)" >&2
    exit 1
  fi
  "$VENV/bin/python" -m pip --disable-pip-version-check list --format=freeze 2>/dev/null > "$WORK/packages.txt"
  echo "   $(wc -l < "$WORK/packages.txt") packages (list: $WORK/packages.txt)"
  echo "$STAMP" > "$VENV/.waferdesk-stamp"
fi
VERSION="$("$VENV/bin/python" -c 'import sys; sys.path.insert(0, "."); import waferdesk; print(waferdesk.__version__)')"
NAME="WaferDesk-$VERSION-linux-x86_64-$VARIANT"
TOP="WaferDesk-$VERSION-$VARIANT"

# -- 2. PyInstaller ------------------------------------------------------------------------
echo "== PyInstaller $PYINSTALLER_VERSION: $NAME"
rm -rf "$WORK/dist"
mkdir -p "$WORK"
PYI_LOG="$WORK/pyinstaller.log"
if ! WAFERDESK_VARIANT="$VARIANT" "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$WORK/dist" --workpath "$WORK/work" packaging/waferdesk.spec > "$PYI_LOG" 2>&1; then
  cat "$PYI_LOG" >&2
  echo "PyInstaller failed (log: $PYI_LOG)" >&2
  exit 1
fi
# known, harmless warnings: icons are for Windows/macOS, Windows DLLs named in platformdirs,
# the GTK theme plugin (dropped by the spec), TensorRT's libraries (not shipped: the gpu bundle
# runs CUDA), pyqtgraph's OpenGL part (excluded)
grep -v -e "Ignoring icon; supported only on Windows" -e "required via ctypes not found" \
  -e "dependency of .*libqgtk3.so" -e "dependency of .*libonnxruntime_providers_tensorrt.so" \
  -e "Failed to collect submodules for 'pyqtgraph.opengl'" "$PYI_LOG" || true
BUNDLE="$WORK/dist/WaferDesk"
[[ -x "$BUNDLE/WaferDesk" ]] || { echo "PyInstaller did not produce $BUNDLE/WaferDesk" >&2; exit 1; }
cp packaging/linux/install-desktop-entry.sh "$BUNDLE/"

# -- 3. what is in it ----------------------------------------------------------------------
echo "== bundle check"
CHECK_LOG="$WORK/check.log"
"$VENV/bin/python" packaging/check_bundle.py "$BUNDLE" --variant "$VARIANT" ${BUDGET_MB:+--budget-mb "$BUDGET_MB"} |
  tee "$CHECK_LOG"

# -- 4. the archive, and its start-up --------------------------------------------------------
mkdir -p dist
rm -rf "$WORK/stage" && mkdir -p "$WORK/stage"
mv "$BUNDLE" "$WORK/stage/$TOP"
tar -C "$WORK/stage" -czf "dist/$NAME.tar.gz.part" "$TOP"
mv "dist/$NAME.tar.gz.part" "dist/$NAME.tar.gz"
ARCHIVE_MB="$(( $(stat -c %s "dist/$NAME.tar.gz") / 1000000 ))"  # MB = 10^6 bytes, as the bundle check
START_LOG="$WORK/start.log"
: > "$START_LOG"
if [[ "$START_RUNS" -gt 0 ]]; then
  echo "== start-up ($START_RUNS cold runs of the unpacked archive)"
  "$VENV/bin/python" packaging/measure_start.py "dist/$NAME.tar.gz" --runs "$START_RUNS" | tee "$START_LOG"
fi
rm -rf "$WORK/stage"  # the archive is the product (an unpacked gpu bundle is 2.6 GB)
T1=$(date +%s)

echo
echo "== $NAME"
echo "archive: dist/$NAME.tar.gz ($ARCHIVE_MB MB; unpacks to $TOP/)"
grep -e '^size:' -e '^scanned' -e '^runs on:' -e 'default model' "$CHECK_LOG" || true
cat "$START_LOG"
echo "build time: $(( (T1 - T0) / 60 )) min $(( (T1 - T0) % 60 )) s (environment, PyInstaller, check, archive, start-up runs)"
