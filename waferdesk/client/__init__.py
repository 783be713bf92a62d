"""Everything the desktop keeps outside Qt: per-user paths, autosaved drafts, and the interface
to a WaferDesk server (sign-in, queue, outbox; the HTTP client arrives with the server routes).
"""

from .drafts import DRAFT, SAVED, Draft, DraftStore
from .work import Capabilities, LocalSession, Role, Task, WorkClient

__all__ = ["DRAFT", "SAVED", "Capabilities", "Draft", "DraftStore", "LocalSession", "Role", "Task", "WorkClient"]
