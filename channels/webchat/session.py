"""Signed visitor sessions: `<visitor id>.<signature>`, kept by the widget in localStorage.

The signature binds the visitor to one channel, so a token copied to another
site's widget (another channel) is refused, and nobody can forge a visitor id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

# What `new_session` makes. Checked before the signature: the signed text is
# `webchat:<channel>:<visitor>`, so a visitor id with a colon could shift the
# boundary and pass a token of channel "a:b" off as one of channel "a".
_TOKEN = re.compile(r"(v[0-9a-f]{24})\.([A-Za-z0-9_-]{43})")


def _signature(key: bytes, channel_id: str, visitor_id: str) -> str:
    digest = hmac.new(key, f"webchat:{channel_id}:{visitor_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_session(key: bytes, channel_id: str) -> tuple[str, str]:
    """A fresh `(visitor_id, token)`."""
    visitor_id = "v" + secrets.token_hex(12)
    return visitor_id, f"{visitor_id}.{_signature(key, channel_id, visitor_id)}"


def visitor_of(key: bytes, channel_id: str, token: str | None) -> str | None:
    """The visitor id a token proves, or None when it is missing, malformed, forged or
    for another channel."""
    found = _TOKEN.fullmatch(token) if token else None
    if found is None:
        return None
    visitor_id, signature = found.groups()
    expected = _signature(key, channel_id, visitor_id)
    return visitor_id if hmac.compare_digest(signature.encode(), expected.encode()) else None
