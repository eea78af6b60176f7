"""What Messenger and WhatsApp share: Meta's webhook signature and handshake, the check
that a delivery is this channel's own, total parsing helpers, the Graph API client, its
error object, and the 24-hour window.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import aiohttp
from pydantic import BaseModel, SecretStr

from bot.delivery.ratelimit import paced
from bot.errors import ConfigError, DeliveryError, PermanentFailure, RetryLater, WebhookRejected
from bot.model import Event, Outbound
from bot.settings import Settings
from channels.base import Channel, ChannelContext, Media, parse_each

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
USAGE_HEADER = "X-Business-Use-Case-Usage"
# How long Meta's throttles last, from its docs (Graph API rate limiting, WhatsApp error
# codes); a retry sooner only meets the same error. Seconds.
THROTTLED = {
    4: 60.0,  # the app's request limit, counted over a rolling hour
    17: 60.0,  # the user's request limit, rolling hour
    32: 60.0,  # the page's request limit, rolling hour
    613: 60.0,  # calls within one hour exceeded (the Send API's limit)
    341: 60.0,  # application limit reached
    80007: 60.0,  # the WhatsApp Business Account's rate limit, hourly
    130429: 5.0,  # the number's throughput (messages a second)
    131056: 6.0,  # pair rate: one message every 6 s from a number to the same user
    131048: 900.0,  # spam rate limit: the number's quality restricts it; lifts over hours
}
# Meta is down or overloaded: unknown, service, temporary send failure, something went
# wrong, service unavailable.
UNAVAILABLE = {1, 2, 1200, 131000, 131016}
CHECK_TIMEOUT = 15.0  # seconds the credentials check at `channels add` waits for Meta
# seconds a read that is only nice to have (a contact's profile) may take: the contact's
# reply waits on it in the worker
PEEK_TIMEOUT = 5.0
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
    131048: "WhatsApp limits this number because of its quality (messages blocked or "
    "reported as spam): see its quality rating in WhatsApp Manager",
    131056: "too many messages to this contact in a short time (one every 6 seconds)",
    132000: "the template takes another number of parameters: check its body's {{n}}",
    132001: "no approved template of that name in that language: check both in WhatsApp Manager",
    132015: "the template is paused for its low quality: see WhatsApp Manager",
    132016: "the template is disabled for its low quality: make another",
}


class MetaCredentials(BaseModel):
    app_secret: SecretStr
    verify_token: SecretStr


def explain(error: Mapping[str, Any]) -> str:
    """Meta's error object in words an agent understands, keeping the platform's text."""
    code, subcode = _code(error.get("code")), _code(error.get("error_subcode"))
    known = EXPLAINED.get(subcode) or EXPLAINED.get(code)  # type: ignore[arg-type]
    text = error.get("message") or error.get("title") or "unknown error"
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    if isinstance(details, str) and details:  # which parameter, which template
        text = f"{text}: {details}"
    return f"{known} ({code}: {text})" if known else f"Meta refused the message ({code}: {text})"


def delivery_error(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> DeliveryError:
    """The one place Graph API failures become retry-or-give-up decisions."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = _code(error.get("code"))
    if code in THROTTLED:
        after = max(THROTTLED[code], _regain_after(headers or {}))
        return RetryLater(after, f"Meta asks to slow down: {explain(error)}")
    if status == 429:
        return RetryLater(max(30.0, _regain_after(headers or {})), "Meta asks to slow down (429)")
    if status >= 500 or code in UNAVAILABLE:
        return RetryLater(5.0, f"Meta is unavailable ({code or status})")
    return PermanentFailure(explain(error) if error else f"Meta answered HTTP {status}")


def _code(value: Any) -> int | None:
    """Meta's codes are numbers; some proxies pass them on as strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 12:
        return int(value)
    return None


def _regain_after(headers: Mapping[str, str]) -> float:
    """Meta's own estimate of when a throttled account may call again, in seconds (0: none).

    `X-Business-Use-Case-Usage` maps business ids to usage objects carrying
    `estimated_time_to_regain_access` in minutes.
    """
    try:
        usage = json.loads(headers.get(USAGE_HEADER) or "{}")
        minutes = [
            float(u.get("estimated_time_to_regain_access") or 0)
            for uses in usage.values()
            for u in uses
        ]
    except (ValueError, TypeError, AttributeError):
        return 0.0
    return min(max(minutes, default=0.0) * 60, 24 * 3600.0)


def listed(value: Any) -> list[Any]:
    """A payload's list field: absent is empty, another type raises `TypeError`.

    `parse_each` then skips the one item holding it, never its neighbours; iterating a
    string or an object instead would make events of its characters or keys.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"a list was expected, not {type(value).__name__}")
    return value


def ident(value: Any) -> str:
    """A platform id: a non-empty string or an integer, else `ValueError`.

    `str()` of anything would turn an object or a boolean into an id nobody sent.
    """
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"not an id: {type(value).__name__}")


def moment(value: Any, per_second: int = 1) -> datetime:
    """A Unix time (milliseconds with `per_second=1000`) as an aware datetime.

    Out of range raises `ValueError`, which `parse_each` skips; the `OverflowError` or
    `OSError` of the conversion would escape it and answer the webhook 500.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a time: {type(value).__name__}")
    try:
        return datetime.fromtimestamp(int(value) / per_second, UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"time out of range: {exc}") from None


def within(outbound: Outbound, hours: int) -> bool:
    """Whether the contact wrote within `hours` (an unknown time counts as inside)."""
    last = outbound.last_inbound_at
    if last is None:
        return True
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    return datetime.now(UTC) - last <= timedelta(hours=hours)


class MetaChannel(Channel):
    """Shared by Messenger and WhatsApp; subclasses name the token, the product's webhook
    `object` and the account (page, phone number) whose deliveries are theirs."""

    webhook_object: ClassVar[str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._bucket = self.ctx.limits.bucket(f"{self.kind}:{self.id}", *paced(self.per_second))

    @property
    def access_token(self) -> str:
        raise NotImplementedError

    @property
    def account(self) -> str:
        """The page or phone number id a delivery must name to be this channel's."""
        raise NotImplementedError

    def owns(self, value: Any) -> bool:
        return (
            isinstance(value, str | int)
            and not isinstance(value, bool)
            and str(value) == self.account
        )

    # --- in ---------------------------------------------------------------------

    def parse(self, payload: Any) -> list[Event]:
        """This account's events only, and never an exception (a 500 is redelivered forever).

        Spaces may share one Meta app, whose secret signs every page's and number's
        deliveries: another product's or account's are dropped, logged once, so they are
        stored under no channel.
        """
        if not isinstance(payload, dict) or payload.get("object") != self.webhook_object:
            self._dropped("not a delivery of this product")
            return []
        entries = payload.get("entry")
        if not isinstance(entries, list):
            self._dropped("entry is not a list")
            return []
        foreign: list[Any] = []
        events = parse_each(self, entries, lambda entry: self.entry(entry, foreign))
        if foreign:
            self._dropped("for another page or number", len(foreign))
        return events

    def entry(self, entry: Any, foreign: list[Any]) -> list[Event]:
        """One `entry` item's events; what names another account goes to `foreign`."""
        raise NotImplementedError

    def _dropped(self, reason: str, items: int = 1) -> None:
        log.warning(
            "meta: delivery dropped",
            extra={"channel": self.id, "kind": self.kind, "reason": reason, "items": items},
        )

    def verify(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        secret = self.config.credentials.app_secret.get_secret_value()  # type: ignore[attr-defined]
        expected = "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
        if not same_bytes(headers.get(SIGNATURE_HEADER, ""), expected):
            raise WebhookRejected(f"bad or missing {SIGNATURE_HEADER}")

    def handshake(self, query: Mapping[str, str]) -> str:
        token = self.config.credentials.verify_token.get_secret_value()  # type: ignore[attr-defined]
        given = query.get("hub.verify_token", "")
        if query.get("hub.mode") != "subscribe" or not same_bytes(given, token):
            raise WebhookRejected("hub.verify_token does not match the channel's verify token")
        return query.get("hub.challenge", "")

    # --- out --------------------------------------------------------------------

    async def graph(self, method: str, path: str, body: Any | None = None) -> dict[str, Any]:
        """Call the Graph API; the token travels in a header, never in a URL."""
        await self._bucket.acquire()
        url = graph_url(self.ctx.settings, path)
        headers = {"Authorization": f"Bearer {self.access_token}"}
        try:
            async with self.ctx.http.request(method, url, json=body, headers=headers) as resp:
                data = await _json(resp)
                if resp.status >= 400:
                    raise delivery_error(resp.status, data, resp.headers)
                return data if isinstance(data, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(5.0, f"Meta unreachable: {type(exc).__name__}") from None

    async def peek(self, node: str, fields: str) -> dict[str, Any]:
        """`GET /{node}?fields=...` for what is only nice to have (a contact's profile).

        Outside the send budget (a reply must not queue behind it) and with a short
        timeout; raises what `delivery_error` decides, `RetryLater` when Meta is
        unreachable. The token travels in a header, never in a URL.
        """
        headers = {"Authorization": f"Bearer {self.access_token}"}
        timeout = aiohttp.ClientTimeout(total=PEEK_TIMEOUT)
        url = graph_url(self.ctx.settings, node)
        try:
            async with self.ctx.http.get(
                url, params={"fields": fields}, headers=headers, timeout=timeout
            ) as resp:
                data = await _json(resp)
                if resp.status >= 400 or not isinstance(data, dict) or "error" in data:
                    raise delivery_error(resp.status, data, resp.headers)
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(5.0, f"Meta unreachable: {type(exc).__name__}") from None

    async def fetch_media(self, media_id: str) -> Media:
        """Graph media: look up the short-lived URL, then download it with the same token."""
        meta = await self.graph("GET", media_id)
        if not isinstance(meta.get("url"), str):
            raise PermanentFailure(f"Meta has no file for media {media_id}")
        headers = {"Authorization": f"Bearer {self.access_token}"}
        async with self.ctx.http.get(meta["url"], headers=headers) as resp:
            if resp.status >= 400:
                raise delivery_error(resp.status, await _json(resp), resp.headers)
            return Media(await resp.read(), meta.get("mime_type") or resp.content_type)


def graph_url(settings: Settings, path: str) -> str:
    """`CHANCENTER_GRAPH_API_BASE` (with its version, `/v21.0`) and a node's path."""
    return f"{str(settings.graph_api_base).rstrip('/')}/{path.lstrip('/')}"


async def read_node(
    ctx: ChannelContext, token: str, node: str, fields: str, fixes: Mapping[int | None, str]
) -> dict[str, Any]:
    """`GET /{node}?fields=...` when a channel is added: the node, or a `ConfigError`.

    Meta's refusal keeps its code and message, followed by what to do (`fixes` by code,
    `None` for any other); an outage or a throttle says to try again. The caller stores
    nothing when this raises. The token travels in a header, never in a URL.
    """
    base = str(ctx.settings.graph_api_base).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
    try:
        async with ctx.http.get(
            graph_url(ctx.settings, node),
            params={"fields": fields},
            headers=headers,
            timeout=timeout,
        ) as resp:
            status, data, answered = resp.status, await _json(resp), resp.headers
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ConfigError(
            f"Meta's Graph API did not answer at {base} ({type(exc).__name__}): nothing was "
            "stored; try again in a minute"
        ) from None
    error = data.get("error") if isinstance(data, dict) else None
    if status < 400 and isinstance(data, dict) and error is None and data.get("id"):
        return data
    if isinstance(error, dict):
        code, text = _code(error.get("code")), str(error.get("message") or "no message")
        # "Malformed access token EAA...": Meta may echo the token back
        text = text.replace(token, "<the token>") if token else text
        if isinstance(delivery_error(status, data, answered), RetryLater):
            raise ConfigError(
                f"Meta's Graph API is unavailable or busy ({code}: {text}): nothing was "
                "stored; try again in a few minutes"
            )
        raise ConfigError(
            f"Meta refused ({code}: {text}): {fixes.get(code, fixes[None])}; nothing was stored"
        )
    if status >= 500 or status == 429:
        raise ConfigError(
            f"Meta's Graph API is unavailable (HTTP {status}): nothing was stored; try again "
            "in a few minutes"
        )
    raise ConfigError(
        f"{base} answered HTTP {status} without a Graph API answer: check "
        "CHANCENTER_GRAPH_API_BASE (Meta's is https://graph.facebook.com/v21.0); nothing "
        "was stored"
    )


def numeric_id(value: str, flag: str, what: str) -> str:
    """Meta's ids are digits; anything else would only reach a wrong URL path."""
    if not value.isdigit() or not value.isascii():
        raise ConfigError(f"{flag} is the {what} (digits only), not {value!r}")
    return value


def same_bytes(given: str, expected: str) -> bool:
    """Constant-time equality of what was sent, byte for byte.

    A header that is not UTF-8 reaches us with surrogate escapes: encoding them back
    gives the bytes sent, where a plain `encode()` would raise and answer 500.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


async def _json(resp: aiohttp.ClientResponse) -> Any:
    """The body as JSON, or None: a proxy's HTML error page must not escape as ValueError."""
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None
