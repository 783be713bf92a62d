#!/bin/sh
# Add WaferDesk to this user's application menu (and `waferdesk` to ~/.local/bin), pointing at
# the folder this script lies in. Nothing is written outside the user's home; run it again after
# moving the folder; `--remove` takes both away. Shipped at the top of the unpacked bundle.
# Only what points at this folder is replaced or removed: a `waferdesk` command that is not a
# link to a WaferDesk bundle (a pip install's) is left alone, and `--remove` run from an old
# folder leaves the entry and link of another one in place.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
APPS="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
ENTRY="$APPS/waferdesk.desktop"
LINK="$HOME/.local/bin/waferdesk"
EXEC_LINE="Exec=\"$HERE/WaferDesk\" app %F"
if [ "${1:-}" = "--remove" ]; then
  if [ -f "$ENTRY" ] && grep -qxF "$EXEC_LINE" "$ENTRY"; then
    rm -f "$ENTRY"
    echo "removed $ENTRY"
  elif [ -e "$ENTRY" ]; then
    echo "left $ENTRY: it is not this folder's ($HERE)"
  fi
  if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$HERE/WaferDesk" ]; then
    rm -f "$LINK"
    echo "removed $LINK"
  elif [ -e "$LINK" ] || [ -L "$LINK" ]; then
    echo "left $LINK: it is not a link to $HERE/WaferDesk"
  fi
  exit 0
fi
[ -x "$HERE/WaferDesk" ] || { echo "$HERE/WaferDesk not found: run this script from the unpacked WaferDesk folder" >&2; exit 1; }
mkdir -p "$APPS" "$HOME/.local/bin"
cat > "$ENTRY" <<DESKTOP
[Desktop Entry]
Type=Application
Name=WaferDesk
Comment=Wafer-map defect patterns: view, segment, label
$EXEC_LINE
Icon=$HERE/_internal/waferdesk/_resources/icons/waferdesk.png
Terminal=false
Categories=Science;Engineering;
DESKTOP
echo "added $ENTRY (menu: WaferDesk)"
if { [ -e "$LINK" ] || [ -L "$LINK" ]; } && ! { [ -L "$LINK" ] && [ "$(basename "$(readlink "$LINK")")" = WaferDesk ]; }; then
  echo "left $LINK as it is (not a link to a WaferDesk bundle: a pip or pipx install's?); run $HERE/WaferDesk by its path" >&2
else
  ln -sf "$HERE/WaferDesk" "$LINK"
  echo "added $LINK (command: waferdesk)"
fi
