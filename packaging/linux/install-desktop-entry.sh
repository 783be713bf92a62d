#!/bin/sh
# Add WaferDesk to this user's application menu (and `waferdesk` to ~/.local/bin), pointing at
# the folder this script lies in. Nothing is written outside the user's home; run it again after
# moving the folder; `--remove` takes both away. Shipped at the top of the unpacked bundle.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
APPS="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
ENTRY="$APPS/waferdesk.desktop"
LINK="$HOME/.local/bin/waferdesk"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$ENTRY" "$LINK"
  echo "removed $ENTRY and $LINK"
  exit 0
fi
[ -x "$HERE/WaferDesk" ] || { echo "$HERE/WaferDesk not found: run this script from the unpacked WaferDesk folder" >&2; exit 1; }
mkdir -p "$APPS" "$HOME/.local/bin"
cat > "$ENTRY" <<DESKTOP
[Desktop Entry]
Type=Application
Name=WaferDesk
Comment=Wafer-map defect patterns: view, segment, label
Exec="$HERE/WaferDesk" app %F
Icon=$HERE/_internal/waferdesk/_resources/icons/waferdesk.png
Terminal=false
Categories=Science;Engineering;
DESKTOP
ln -sf "$HERE/WaferDesk" "$LINK"
echo "added $ENTRY (menu: WaferDesk) and $LINK (command: waferdesk)"
