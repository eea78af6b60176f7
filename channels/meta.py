"""What Messenger and WhatsApp share: Meta's webhook signature and handshake, the Graph
API client, its error object, and the 24-hour window.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from pydantic import BaseModel, SecretStr

from bot.errors import DeliveryError, PermanentFailure, RetryLater, WebhookRejected
from bot.model import Outbound
from bot.ratelimit import paced
from channels.base import Channel, Media

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
RETRYABLE = {1, 2, 4, 17, 32, 341, 613, 80007, 130429, 131000, 131016, 131048, 131056}
EXPLAINED = {
    190: "the access token expired or was revoked: add the channel again with a new one",
    551: "this person isn't available right now (they may have blocked the page)",
    2018278: "outside the 24-hour window: the contact has not written in the last 24 hours",
    2018108: "the contact has not opted in to receive messages from this page",
    131047: "more than 24 hours since the contact last wrote: WhatsApp only allows an "
    "approved template now",
    470: "more than 24 hours since the contact last wrote: WhatsApp only allows an "
    "approved template now",
    131026: "undeliverable: the number may not be on WhatsApp, or the contact must accept "
    "new terms",
    131030: "the number is not in the test number's allowed list",
    131051: "WhatsApp does not support this kind of message",
}


class MetaCredentials(BaseModel):
    app_secret: SecretStr
    verify_token: SecretStr


def explain(error: Mapping[str, Any]) -> str:
    """Meta's error object in words an agent understands, keeping the platform's text."""
    code, subcode = error.get("code"), error.get("error_subcode")
    known = EXPLAINED.get(subcode) or EXPLAINED.get(code)  # type: ignore[arg-type]
    text = error.get("message") or error.get("title") or "unknown error"
    return f"{known} ({code}: {text})" if known else f"Meta refused the message ({code}: {text})"


def delivery_error(status: int, body: Any) -> DeliveryError:
    """The one place Graph API failures become retry-or-give-up decisions."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = error.get("code")
    if status == 429 or status >= 500 or code in RETRYABLE:
        return RetryLater(
            30.0 if code in (4, 17, 32, 613, 80007, 130429) else 5.0,
            f"Meta asks to slow down or is unavailable ({code or status})",
        )
    return PermanentFailure(explain(error) if error else f"Meta answered HTTP {status}")


def within(outbound: Outbound, hours: int) -> bool:
    """Whether the contact wrote within `hours` (an unknown time counts as inside)."""
    last = outbound.last_inbound_at
    if last is None:
        return True
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    return datetime.now(UTC) - last <= timedelta(hours=hours)


class MetaChannel(Channel):
    """Shared by Messenger and WhatsApp; subclasses name the token and the sending object."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        rate = float(
            self.config.settings.get(
                "per_second", self.capabilities.per_second if self.capabilities else 40.0
            )
        )
        self._bucket = self.ctx.limits.bucket(f"{self.kind}:{self.id}", *paced(rate))

    @property
    def access_token(self) -> str:
        raise NotImplementedError

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        secret = self.config.credentials.app_secret.get_secret_value()  # type: ignore[attr-defined]
        expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
        given = headers.get(SIGNATURE_HEADER, "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRejected(f"bad or missing {SIGNATURE_HEADER}")

    def handshake(self, query: Mapping[str, str]) -> str:
        token = self.config.credentials.verify_token.get_secret_value()  # type: ignore[attr-defined]
        given = query.get("hub.verify_token", "")
        if query.get("hub.mode") != "subscribe" or not hmac.compare_digest(
            given.encode(), token.encode()
        ):
            raise WebhookRejected("hub.verify_token does not match the channel's verify token")
        return query.get("hub.challenge", "")

    async def graph(self, method: str, path: str, body: Any | None = None) -> Any:
        """Call the Graph API; the token travels in a header, never in a URL."""
        await self._bucket.acquire()
        url = f"{str(self.ctx.settings.graph_api_base).rstrip('/')}/{path.lstrip('/')}"
        headers = {"Authorization": f"Bearer {self.access_token}"}
        try:
            async with self.ctx.http.request(method, url, json=body, headers=headers) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise delivery_error(resp.status, data)
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(5.0, f"Meta unreachable: {type(exc).__name__}") from None

    async def fetch_media(self, media_id: str) -> Media:
        """Graph media: look up the short-lived URL, then download it with the same token."""
        meta = await self.graph("GET", media_id)
        headers = {"Authorization": f"Bearer {self.access_token}"}
        async with self.ctx.http.get(meta["url"], headers=headers) as resp:
            if resp.status >= 400:
                raise delivery_error(resp.status, await resp.json(content_type=None))
            return Media(await resp.read(), meta.get("mime_type") or resp.content_type)
