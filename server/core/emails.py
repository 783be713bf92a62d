"""E-mail addresses of accounts: refused when obviously malformed (no dependency on a validator
package; nothing is sent to them, so a plausible shape is all that is checked)."""

from __future__ import annotations

import re

MAX_EMAIL_LENGTH = 254  # RFC 5321's longest forward path, less the angle brackets
# local@domain: one @, no spaces or control characters, the domain's labels non-empty, no label
# starting or ending with a hyphen. A one-label domain (user@fabhost) is allowed: fab intranets
# have them, and refusing a real address costs more than accepting a typo.
_LABEL = r"[^\s@.\x00-\x1f\x7f\-](?:[^\s@.\x00-\x1f\x7f]*[^\s@.\x00-\x1f\x7f\-])?"
EMAIL_RE = re.compile(rf"[^\s@\x00-\x1f\x7f]+@{_LABEL}(?:\.{_LABEL})*")


def email_problem(email: str) -> str | None:
    """Why ``email`` is no e-mail address (a phrase), or None when it looks like one."""
    if len(email) > MAX_EMAIL_LENGTH:
        return f"at most {MAX_EMAIL_LENGTH} characters"
    if not EMAIL_RE.fullmatch(email):
        return f"{email!r} is not an e-mail address (name@example.com)"
    local = email.rsplit("@", 1)[0]
    if len(local) > 64 or local.startswith(".") or local.endswith(".") or ".." in local:
        return f"{email!r} is not an e-mail address (name@example.com)"
    return None


def check_email(email: str) -> str:
    """``email`` unchanged when it looks like an address; ``ValueError`` saying why otherwise
    (pydantic turns it into a 422 naming the field)."""
    problem = email_problem(email)
    if problem is not None:
        raise ValueError(problem)
    return email
