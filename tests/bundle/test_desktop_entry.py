"""packaging/linux/install-desktop-entry.sh (shipped at the top of the Linux bundle): the menu
entry and ~/.local/bin/waferdesk it adds, and that install and `--remove` touch only what points
at the folder the script lies in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "linux" / "install-desktop-entry.sh"

pytestmark = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX sh")


def _bundle(root: Path) -> Path:
    """A stand-in unpacked bundle: the executable and the script, as build-desktop.sh lays them out."""
    root.mkdir(parents=True)
    exe = root / "WaferDesk"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    shutil.copy2(SCRIPT, root / SCRIPT.name)
    return root


def _run(bundle: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    done = subprocess.run(["sh", str(bundle / SCRIPT.name), *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _paths(home: Path) -> tuple[Path, Path]:
    return home / ".local/share/applications/waferdesk.desktop", home / ".local/bin/waferdesk"


def test_install_points_menu_entry_and_command_at_this_folder_and_remove_takes_them(tmp_path: Path) -> None:
    bundle, home = _bundle(tmp_path / "Apps" / "WaferDesk 0.1.0-cpu"), tmp_path / "home"
    _run(bundle, home)
    entry, link = _paths(home)
    text = entry.read_text()
    assert f'Exec="{bundle}/WaferDesk" app %F' in text.splitlines()
    assert f"Icon={bundle}/_internal/waferdesk/_resources/icons/waferdesk.png" in text.splitlines()
    assert link.is_symlink() and os.readlink(link) == f"{bundle}/WaferDesk"
    _run(bundle, home, "--remove")
    assert not entry.exists() and not link.is_symlink()


@pytest.mark.parametrize("kind", ["pip script", "pipx link"])
def test_a_waferdesk_command_of_a_python_install_is_neither_replaced_nor_removed(tmp_path: Path, kind: str) -> None:
    bundle, home = _bundle(tmp_path / "WaferDesk-0.1.0-cpu"), tmp_path / "home"
    _, link = _paths(home)
    link.parent.mkdir(parents=True)
    if kind == "pip script":
        link.write_text("#!/usr/bin/python3\nfrom waferdesk.cli import main\n")
    else:
        target = home / ".local/pipx/venvs/waferdesk/bin/waferdesk"
        target.parent.mkdir(parents=True)
        target.write_text("#!/usr/bin/python3\n")
        link.symlink_to(target)
    before = (link.is_symlink(), os.readlink(link) if link.is_symlink() else link.read_text())
    _run(bundle, home)
    _run(bundle, home, "--remove")
    assert link.exists() or link.is_symlink(), f"{kind} deleted"
    assert (link.is_symlink(), os.readlink(link) if link.is_symlink() else link.read_text()) == before


def test_remove_from_an_old_folder_leaves_the_new_folders_entry_and_command(tmp_path: Path) -> None:
    old, new = _bundle(tmp_path / "WaferDesk-0.1.0-cpu"), _bundle(tmp_path / "WaferDesk-0.2.0-cpu")
    home = tmp_path / "home"
    entry, link = _paths(home)
    _run(old, home)
    _run(new, home)  # the newer bundle takes over the entry and the command
    assert os.readlink(link) == f"{new}/WaferDesk"
    _run(old, home, "--remove")
    assert f'Exec="{new}/WaferDesk" app %F' in entry.read_text().splitlines()
    assert os.readlink(link) == f"{new}/WaferDesk"
    _run(new, home, "--remove")
    assert not entry.exists() and not link.is_symlink()
