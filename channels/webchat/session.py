"""Signed visitor sessions: `<visitor id>.<signature>`, kept by the widget in localStorage.

The signature binds the visitor to one channel, so a token copied to another
site's widget (another channel) is refused, and nobody can forge a visitor id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def _signature(key: bytes, channel_id: str, visitor_id: str) -> str:
    digest = hmac.new(key, f"webchat:{channel_id}:{visitor_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_session(key: bytes, channel_id: str) -> tuple[str, str]:
    """A fresh `(visitor_id, token)`."""
    visitor_id = "v" + secrets.token_hex(12)
    return visitor_id, f"{visitor_id}.{_signature(key, channel_id, visitor_id)}"


def visitor_of(key: bytes, channel_id: str, token: str | None) -> str | None:
    """The visitor id a token proves, or None when it is missing, forged or for another channel."""
    if not token or token.count(".") != 1:
        return None
    visitor_id, signature = token.split(".")
    expected = _signature(key, channel_id, visitor_id)
    return visitor_id if hmac.compare_digest(signature.encode(), expected.encode()) else None
