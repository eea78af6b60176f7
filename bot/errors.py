"""One error tree; the HTTP layer maps these classes to status codes in one table."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web


class ChanCenterError(Exception):
    """Base of every error ChanCenter raises on purpose."""


class WebhookRejected(ChanCenterError, PermissionError):
    """The request is not really from the platform (bad or missing signature)."""


class InvalidPayload(ChanCenterError, ValueError):
    """The body cannot be understood (not JSON, wrong shape)."""


class PayloadTooLarge(InvalidPayload):
    """The body is larger than we accept."""


class Unavailable(ChanCenterError):
    """What we must ask to check the request is unreachable: the platform retries (503)."""


class NotFound(ChanCenterError, LookupError):
    """The thing named in the request does not exist (or is not visible to the caller)."""


class Unprocessable(InvalidPayload):
    """Understood but refused: it names what the space lacks, or breaks a rule (422)."""


class Conflict(InvalidPayload):
    """It clashes with what exists: a name taken, a state that does not allow it (409)."""


class DeliveryError(ChanCenterError):
    """Sending to a platform failed."""


class RetryLater(DeliveryError):
    """A transient failure: try again after `after` seconds (None: the backoff decides)."""

    def __init__(self, after: float | None, reason: str = "") -> None:
        super().__init__(reason or f"retry after {after}s")
        self.after = after
        self.reason = reason


class PermanentFailure(DeliveryError):
    """The platform refused the message for good; `reason` is shown to people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecipientBlocked(PermanentFailure):
    """The contact blocked us or left (Telegram 403): their identity gets nothing more."""


class IntegrationError(ChanCenterError):
    """A third-party product (bot, Slack) failed or is misconfigured."""


class BadCredentials(IntegrationError):
    """The product refused our credentials; `first` is True for the first such failure
    since the last success (admins are told once, not per message)."""

    def __init__(self, reason: str, first: bool = True) -> None:
        super().__init__(reason)
        self.first = first


class ConfigError(ChanCenterError):
    """The settings or the stored configuration are wrong; the message says what to fix."""


class Forbidden(ChanCenterError, PermissionError):
    """The caller is known but their role may not do this."""


HTTP_STATUS: dict[type[ChanCenterError], int] = {
    WebhookRejected: 401,
    Forbidden: 403,
    PayloadTooLarge: 413,
    Unprocessable: 422,
    Conflict: 409,
    InvalidPayload: 400,
    NotFound: 404,
    Unavailable: 503,
}


def http_status(exc: ChanCenterError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def error_response(status: int, detail: str) -> web.Response:
    """An RFC 9457 problem document: `detail` says what went wrong and what to do."""
    from aiohttp import web  # here, not above: the CLI's `--help` imports this module

    return web.json_response(
        {
            "type": "about:blank",
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        },
        status=status,
        content_type="application/problem+json",
    )
