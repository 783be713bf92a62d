"""What a model's training data was made from: the generator's source hash and the git commit."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def synth_source_sha256() -> str:
    """sha256 over the generator's source files (names and bytes): the training data's recipe."""
    from waferdesk.core import synth

    h = hashlib.sha256()
    for f in sorted(Path(synth.__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def git_commit(path: Path | None = None) -> str | None:
    """HEAD of the checkout the code runs from, with ``+dirty`` when files differ from it."""
    cwd = path or Path(__file__).parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
