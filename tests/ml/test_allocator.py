"""The malloc tuning that keeps CPU training out of the kernel (waferdesk/ml/allocator.py).

Each case runs in a fresh interpreter: the tuning is process-wide and cannot be undone.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

PROBE = "from waferdesk.ml.allocator import keep_freed_memory as k; print(k(), k())"


def _probe(switch: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "WAFERDESK_MALLOC_TUNING"}
    if switch is not None:
        env["WAFERDESK_MALLOC_TUNING"] = switch
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"), reason="mallopt is glibc's"
)
def test_glibc_is_tuned_by_default_and_the_switch_turns_it_off() -> None:
    assert _probe(None) == "True True"  # the second call answers from the first
    assert _probe("1") == "True True"
    assert _probe("0") == "False False"


def test_off_platforms_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from waferdesk.ml import allocator

    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory.__wrapped__() is False  # uncached: this process may be tuned already
