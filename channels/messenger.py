"""Facebook Messenger (Send API, webhooks of `object: page`)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, SecretStr

from bot.errors import ConfigError, PermanentFailure, RetryLater
from bot.model import (
    Event,
    LocationPart,
    MediaPart,
    MessageReceived,
    Outbound,
    Part,
    Postback,
    QuickRepliesPart,
    Reaction,
    ReadUpTo,
    Sender,
    SentReceipt,
    StatusChanged,
    TextPart,
)
from channels.base import ChannelContext, Profile, parse_each, refuse_templates
from channels.meta import (
    MetaChannel,
    MetaCredentials,
    ident,
    listed,
    moment,
    numeric_id,
    read_node,
    within,
)
from channels.render import Capabilities, fits, numbered, split_text

log = logging.getLogger(__name__)
V = TypeVar("V")

CAPABILITIES = Capabilities(
    text_limit=2000,
    quick_replies=13,
    button_title=20,
    payload_bytes=1000,
    window_hours=24,
    per_second=40,
)
HUMAN_AGENT_HOURS = 24 * 7  # the HUMAN_AGENT tag lets a person answer for 7 days
# The message tags Meta still allows for updates outside the 24-hour window, which a
# broadcast may carry (`Outbound.tag`); each only for its own kind of news, by Meta's policy.
BROADCAST_TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE"})
ATTACHMENT_TYPES = {"image": "image", "audio": "audio", "video": "video", "file": "file"}
TOKEN_HELP = (
    "the page's own access token (Meta for Developers > your app > Messenger > Settings > "
    "Access Tokens)"
)
PROFILE_FIELDS = "first_name,last_name,profile_pic"  # the User Profile API's defaults
# seconds a sender's profile, or Meta's refusal to give one, is remembered: a handling that
# runs again asks nothing, and a refusal (a phone-number account, no Business Asset User
# Profile Access yet) is asked again an hour later, when an app review may have changed it
PROFILE_KEPT = 3600.0
PROFILES_KEPT = 2048  # senders a channel remembers answers for; the oldest go first
# seconds at least during which nobody's profile is asked after Meta was busy, down or
# unreachable: messages keep flowing without waiting on it
PROFILE_PAUSE = 60.0
FIXES: dict[int | None, str] = {
    190: f"check --page-token: it must be {TOKEN_HELP}, still valid",
    None: f"check --page-token is {TOKEN_HELP}, with the pages_messaging permission",
}


class MessengerCredentials(MetaCredentials):
    page_id: str
    page_token: SecretStr


class MessengerChannel(MetaChannel):
    kind = "messenger"
    credentials_model = MessengerCredentials
    capabilities = CAPABILITIES
    webhook_object = "page"  # Instagram's deliveries say "instagram"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # one channel object a channel and app (the registry's): these are the channel's
        self._profiles: Recent[Profile | None] = Recent(PROFILE_KEPT, PROFILES_KEPT)
        self._profiles_paused_until = 0.0

    @classmethod
    async def prepare(cls, given: Mapping[str, str], ctx: ChannelContext) -> tuple[BaseModel, str]:
        """The token must be the page's own: `GET /me` with a page token is that page.

        `GET /{page-id}` would not do: a page's id and name are public to any token.
        """
        credentials, _ = await super().prepare(given, ctx)
        assert isinstance(credentials, MessengerCredentials)
        page_id = numeric_id(credentials.page_id, "--page-id", "page's id")
        token = credentials.page_token.get_secret_value()
        me = await read_node(ctx, token, "me", "id,name", FIXES)
        name = me.get("name") if isinstance(me.get("name"), str) else None
        if str(me["id"]) != page_id:
            raise ConfigError(
                f"that token is for {name or 'someone'} ({me['id']}), not page {page_id}: "
                f"--page-token must be {TOKEN_HELP} (a user's or another page's will not do); "
                "nothing was stored"
            )
        return credentials, name or f"page {page_id}"

    @property
    def access_token(self) -> str:
        return self.config.credentials.page_token.get_secret_value()  # type: ignore[attr-defined]

    @property
    def account(self) -> str:
        return self.config.credentials.page_id  # type: ignore[attr-defined,no-any-return]

    # --- in ---------------------------------------------------------------------

    def entry(self, entry: Any, foreign: list[Any]) -> list[Event]:
        """An entry is one page's: its `id` must be this channel's page."""
        if not self.owns(entry.get("id")):
            foreign.append(entry.get("id"))
            return []
        return parse_each(self, listed(entry.get("messaging")), _event)

    async def profile(self, external_id: str) -> Profile | None:
        """Messenger's User Profile API: `GET /{PSID}?fields=first_name,last_name,profile_pic`.

        Meta's refusal (no permission, a phone-number account's 2018218, an id that is not
        this page's) is None and remembered for the sender like a profile; Meta busy, down
        or unreachable is None and pauses every sender's lookups. Never raises.
        """
        known, answer = self._profiles.get(external_id)
        if known:
            return answer
        if not (external_id.isdigit() and external_id.isascii()):
            return None  # a PSID is digits: anything else would reach another Graph path
        if time.monotonic() < self._profiles_paused_until:
            return None
        try:
            found = _profile(await self.peek(external_id, PROFILE_FIELDS))
        except RetryLater as exc:
            pause = max(exc.after or 0.0, PROFILE_PAUSE)
            self._profiles_paused_until = time.monotonic() + pause
            log.warning(
                "messenger: no profile lookups for a while",
                extra={"channel": self.id, "reason": str(exc), "seconds": pause},
            )
            return None
        except PermanentFailure as exc:
            log.info(
                "messenger: Meta gives no profile for this sender",
                extra={"channel": self.id, "reason": exc.reason},
            )
            found = None
        self._profiles.set(external_id, found)
        return found

    # --- out --------------------------------------------------------------------

    def render(self, outbound: Outbound) -> list[dict[str, Any]]:
        """Send API bodies, in order; the caller adds messaging_type/tag for the window."""
        bodies: list[dict[str, Any]] = []
        texts: list[str] = []
        quick: list[dict[str, Any]] | None = None
        for part in outbound.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, QuickRepliesPart):
                if fits(part.replies, CAPABILITIES, CAPABILITIES.quick_replies):
                    quick = [
                        {"content_type": "text", "title": r.title, "payload": r.payload}
                        for r in part.replies
                    ]
                else:
                    texts.append(numbered(part.replies))
            elif isinstance(part, MediaPart) and part.url:
                kind = "image" if part.type == "sticker" else ATTACHMENT_TYPES[part.type]
                bodies.append(
                    {
                        "attachment": {
                            "type": kind,
                            "payload": {"url": part.url, "is_reusable": True},
                        }
                    }
                )
            elif isinstance(part, LocationPart):
                texts.append(f"https://maps.google.com/?q={part.latitude},{part.longitude}")
        if outbound.sender_name and texts:
            texts[0] = f"{outbound.sender_name}: {texts[0]}"
        chunks = split_text("\n\n".join(texts), CAPABILITIES.text_limit) if texts else []
        bodies += [{"text": chunk} for chunk in chunks]
        if quick:
            if not chunks:
                bodies.append({"text": "…"})
            bodies[-1]["quick_replies"] = quick
        return [{"recipient": {"id": outbound.recipient}, "message": b} for b in bodies]

    async def send(self, outbound: Outbound) -> SentReceipt:
        refuse_templates(outbound)
        if within(outbound, 24):
            extra = {"messaging_type": "RESPONSE"}
        elif outbound.tag in BROADCAST_TAGS:
            extra = {"messaging_type": "MESSAGE_TAG", "tag": outbound.tag}
        elif outbound.sender_name and within(outbound, HUMAN_AGENT_HOURS):
            extra = {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        else:
            raise PermanentFailure(
                "outside Messenger's window: the contact last wrote more than 24 hours ago "
                "(7 days for a person's reply, any time for a message tag's update)"
            )
        receipt = SentReceipt()
        page = self.config.credentials.page_id  # type: ignore[attr-defined]
        for body in self.render(outbound):
            answer = await self.graph("POST", f"{page}/messages", {**body, **extra})
            receipt = SentReceipt(external_id=answer.get("message_id"))
        return receipt


class Recent(Generic[V]):
    """A few answers kept for `ttl` seconds, at most `size` of them (the oldest go first).

    Kept on the channel object, never in a module: each channel and app has its own.
    """

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._size, self._clock = ttl, size, clock
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, V | None]:
        """`(True, value)` while `key` is remembered, else `(False, None)`."""
        item = self._items.get(key)
        if item is None:
            return False, None
        if item[0] <= self._clock():
            del self._items[key]
            return False, None
        return True, item[1]

    def set(self, key: str, value: V) -> None:
        self._items.pop(key, None)
        self._items[key] = (self._clock() + self._ttl, value)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


def _profile(data: dict[str, Any]) -> Profile | None:
    """Meta leaves out what a person keeps private; with nothing left there is no profile."""
    names = (data.get("first_name"), data.get("last_name"))
    name = " ".join(n.strip() for n in names if isinstance(n, str) and n.strip())
    picture = data.get("profile_pic")
    avatar = picture if isinstance(picture, str) and picture.startswith("https://") else None
    if not name and avatar is None:
        return None
    return Profile(name=name or None, avatar_url=avatar)


def _event(item: dict[str, Any]) -> list[Event]:
    sender = Sender(external_id=ident(item["sender"]["id"]))
    if "message" in item:
        message = item["message"]
        if message.get("is_echo"):
            return []  # our own page's message coming back
        if "quick_reply" in message:
            return [
                Postback(
                    external_id=message["mid"],
                    sender=sender,
                    payload=message["quick_reply"]["payload"],
                    title=message.get("text"),
                )
            ]
        parts = _parts(message)
        if not parts:
            return []
        return [
            MessageReceived(
                external_id=message["mid"],
                sender=sender,
                parts=tuple(parts),
                sent_at=_time(item.get("timestamp")),
            )
        ]
    if "postback" in item:
        postback = item["postback"]
        referral = (postback.get("referral") or {}).get("ref")
        return [
            Postback(
                external_id=postback.get("mid") or f"pb:{_stamp(item['timestamp'])}",
                sender=sender,
                payload=postback["payload"],
                title=postback.get("title"),
                referral=referral,
            )
        ]
    if "delivery" in item:
        return [
            StatusChanged(external_id=mid, status="delivered")
            for mid in listed(item["delivery"].get("mids"))
        ]
    if "read" in item:
        return [ReadUpTo(sender=sender, watermark=_time(item["read"]["watermark"]))]
    if "reaction" in item:
        reaction = item["reaction"]
        emoji = reaction.get("emoji", "") if reaction.get("action") == "react" else ""
        return [
            Reaction(
                external_id=f"re:{ident(reaction['mid'])}:{_stamp(item['timestamp'])}",
                sender=sender,
                emoji=emoji,
                to_external_id=reaction["mid"],
            )
        ]
    log.debug("messenger: event kind ignored", extra={"keys": sorted(item)})
    return []


def _parts(message: dict[str, Any]) -> list[Part]:
    parts: list[Part] = []
    if message.get("text"):
        parts.append(TextPart(text=message["text"]))
    for attachment in listed(message.get("attachments")):
        kind, payload = attachment.get("type"), attachment.get("payload") or {}
        if kind in ATTACHMENT_TYPES:
            parts.append(MediaPart(type=ATTACHMENT_TYPES[kind], url=payload.get("url")))
        elif kind == "location":
            point = payload["coordinates"]
            parts.append(
                LocationPart(
                    latitude=point["lat"], longitude=point["long"], name=attachment.get("title")
                )
            )
    return parts


def _time(ms: Any) -> datetime:
    return moment(ms, per_second=1000) if ms is not None else datetime.now(UTC)


def _stamp(ms: Any) -> int:
    """A timestamp that names an event (postbacks and reactions have no id of their own)."""
    _time(ms)  # a number in range, or the item is malformed
    return int(ms)
