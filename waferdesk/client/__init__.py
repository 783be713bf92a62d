"""Everything the desktop keeps outside Qt: per-user paths, autosaved drafts, and the interface
to a WaferDesk server (sign-in, queue, outbox). The HTTP client (:mod:`.api`, httpx) is
imported on demand: ``from waferdesk.client.api import ServerClient``.
"""

from .drafts import DRAFT, SAVED, Draft, DraftStore
from .work import Capabilities, LocalSession, Role, Task, WorkClient

__all__ = ["DRAFT", "SAVED", "Capabilities", "Draft", "DraftStore", "LocalSession", "Role", "Task", "WorkClient"]
