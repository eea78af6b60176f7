"""Broadcasts: one message to a segment of contacts through one channel, paced, resumable.

Entry points: `chancenter.extensions:broadcasts` adds the `/api/v1/broadcasts` routes
and, where the app works its queue, the runner that plans and sends running broadcasts;
`chancenter.handlers:03-opt-out` hears a contact's STOP and START.
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Filled in as the package grows."""
