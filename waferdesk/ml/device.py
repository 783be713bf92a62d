"""Where training and the active-learning simulation run: ``--device`` checked up front.

torch accepts ``torch.device("cuda")`` on a machine without a GPU and fails only at the first
``.to()``, with a driver message and a stack trace, after the run directory was written;
this turns every unusable ``--device`` into one line naming the flag and the value first.
"""

from __future__ import annotations

import torch

from waferdesk.core.errors import WaferDeskError

CHOICES = "auto, cpu, cuda or cuda:N"


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` are checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise WaferDeskError(f"--device {name!r}: not a device; choose {CHOICES}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise WaferDeskError(f"--device {name!r}: WaferDesk trains on {CHOICES}")
    if not torch.cuda.is_available():
        raise WaferDeskError(f"--device {name!r}: no CUDA GPU is available here; use --device cpu (or auto)")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise WaferDeskError(f"--device {name!r}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    return device
