"""WhatsApp Cloud API (webhooks of `object: whatsapp_business_account`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel, SecretStr

from bot.errors import PermanentFailure
from bot.model import (
    ContactCardPart,
    Event,
    LocationPart,
    MediaPart,
    MessageReceived,
    Outbound,
    Part,
    Postback,
    QuickRepliesPart,
    Reaction,
    Sender,
    SentReceipt,
    StatusChanged,
    TemplatePart,
    TextPart,
)
from channels.base import ChannelContext, parse_each
from channels.meta import (
    MetaChannel,
    MetaCredentials,
    explain,
    listed,
    moment,
    numeric_id,
    read_node,
    within,
)
from channels.render import Capabilities, fits, numbered, split_text

log = logging.getLogger(__name__)

CAPABILITIES = Capabilities(
    text_limit=4096,
    quick_replies=3,  # reply buttons
    list_rows=10,  # a list message beyond that
    button_title=20,
    payload_bytes=256,
    window_hours=24,
    per_second=80,
)
MEDIA = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "document": "file",
    "sticker": "sticker",
}
SEND_MEDIA = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "file": "document",
    "sticker": "sticker",
}

NUMBER_HELP = (
    "check --phone-number-id (the number's id from WhatsApp Manager or your app's API Setup, "
    "not the number itself) and that --access-token's system user is assigned to its "
    "WhatsApp Business Account"
)
FIXES: dict[int | None, str] = {
    190: "check --access-token: use a System User access token with the "
    "whatsapp_business_messaging permission (Business Settings > System users), still valid",
    100: NUMBER_HELP,
    None: NUMBER_HELP + ", with the whatsapp_business_management permission",
}


class WhatsAppCredentials(MetaCredentials):
    phone_number_id: str
    access_token: SecretStr


class WhatsAppChannel(MetaChannel):
    kind = "whatsapp"
    credentials_model = WhatsAppCredentials
    capabilities = CAPABILITIES
    webhook_object = "whatsapp_business_account"

    @classmethod
    async def prepare(cls, given: Mapping[str, str], ctx: ChannelContext) -> tuple[BaseModel, str]:
        """The token must read the number: a token of another business account cannot."""
        credentials, _ = await super().prepare(given, ctx)
        assert isinstance(credentials, WhatsAppCredentials)
        number_id = numeric_id(credentials.phone_number_id, "--phone-number-id", "number's id")
        token = credentials.access_token.get_secret_value()
        number = await read_node(
            ctx, token, number_id, "id,display_phone_number,verified_name", FIXES
        )
        name, phone = number.get("verified_name"), number.get("display_phone_number")
        shown = [str(v) for v in (name, phone) if isinstance(v, str) and v]
        if len(shown) == 2:
            return credentials, f"{shown[0]} ({shown[1]})"
        return credentials, shown[0] if shown else f"number {number_id}"

    @property
    def access_token(self) -> str:
        return self.config.credentials.access_token.get_secret_value()  # type: ignore[attr-defined]

    @property
    def account(self) -> str:
        return self.config.credentials.phone_number_id  # type: ignore[attr-defined,no-any-return]

    # --- in ---------------------------------------------------------------------

    def entry(self, entry: Any, foreign: list[Any]) -> list[Event]:
        """An entry is a business account's, which may have several numbers: each change
        is matched to this channel's number by its `metadata.phone_number_id`."""
        changes = listed(entry.get("changes"))
        return parse_each(self, changes, lambda change: self._change(change, foreign))

    def _change(self, change: Any, foreign: list[Any]) -> list[Event]:
        if change.get("field", "messages") != "messages":
            log.debug("whatsapp: webhook field ignored", extra={"channel": self.id})
            return []
        value = change["value"]
        metadata = value.get("metadata")
        number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
        if not self.owns(number):
            foreign.append(number)
            return []
        names = _names(value.get("contacts"))
        events = parse_each(self, listed(value.get("messages")), partial(_message, names=names))
        return events + parse_each(self, listed(value.get("statuses")), lambda s: [_status(s)])

    # --- out --------------------------------------------------------------------

    def render(self, outbound: Outbound) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = []
        texts: list[str] = []
        interactive: dict[str, Any] | None = None
        for part in outbound.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, QuickRepliesPart):
                interactive = _interactive(part)
                if interactive is None:
                    texts.append(numbered(part.replies))
            elif isinstance(part, MediaPart) and part.url:
                kind = SEND_MEDIA[part.type]
                media: dict[str, Any] = {"link": part.url}
                if part.caption and kind in ("image", "video", "document"):
                    media["caption"] = part.caption
                bodies.append({"type": kind, kind: media})
            elif isinstance(part, TemplatePart):
                bodies.append({"type": "template", "template": _template(part)})
            elif isinstance(part, LocationPart):
                bodies.append(
                    {
                        "type": "location",
                        "location": {
                            "latitude": part.latitude,
                            "longitude": part.longitude,
                            "name": part.name,
                            "address": part.address,
                        },
                    }
                )
        if outbound.sender_name and texts:
            texts[0] = f"*{outbound.sender_name}*: {texts[0]}"
        chunks = split_text("\n\n".join(texts), CAPABILITIES.text_limit) if texts else []
        if interactive is not None:
            # the buttons carry the last chunk as their body text (max 1024)
            body = chunks.pop() if chunks and len(chunks[-1]) <= 1024 else "…"
            interactive["body"] = {"text": body}
        bodies += [{"type": "text", "text": {"body": c, "preview_url": False}} for c in chunks]
        if interactive is not None:
            bodies.append({"type": "interactive", "interactive": interactive})
        return [
            {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": outbound.recipient,
                **b,
            }
            for b in bodies
        ]

    async def send(self, outbound: Outbound) -> SentReceipt:
        """Outside the 24-hour window only a message of approved templates may go."""
        templates = [p for p in outbound.parts if isinstance(p, TemplatePart)]
        if len(templates) < len(outbound.parts) and not within(outbound, 24):
            raise PermanentFailure(explain({"code": 131047, "message": "checked before sending"}))
        for template in templates:
            if "" in template.params:  # Meta's answer would only say "invalid parameter"
                n = template.params.index("") + 1
                raise PermanentFailure(
                    f"template {template.name}: its parameter {{{{{n}}}}} is empty, and "
                    "WhatsApp refuses empty parameters"
                )
        receipt = SentReceipt()
        number = self.config.credentials.phone_number_id  # type: ignore[attr-defined]
        for body in self.render(outbound):
            answer = await self.graph("POST", f"{number}/messages", body)
            receipt = SentReceipt(external_id=(answer.get("messages") or [{}])[0].get("id"))
        return receipt


def _template(part: TemplatePart) -> dict[str, Any]:
    """The Cloud API's template object; the body's parameters only when there are some."""
    template: dict[str, Any] = {"name": part.name, "language": {"code": part.language}}
    if part.params:
        parameters = [{"type": "text", "text": p} for p in part.params]
        template["components"] = [{"type": "body", "parameters": parameters}]
    return template


def _interactive(part: QuickRepliesPart) -> dict[str, Any] | None:
    """Reply buttons up to 3, a list up to 10 rows; None: degrade to a numbered list."""
    replies = part.replies
    if fits(replies, CAPABILITIES, CAPABILITIES.quick_replies):
        return {
            "type": "button",
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": r.payload, "title": r.title}} for r in replies
                ]
            },
        }
    if len(replies) <= CAPABILITIES.list_rows and all(
        len(r.title) <= 24 and len(r.payload) <= 200 for r in replies
    ):
        return {
            "type": "list",
            "action": {
                "button": "Choose",
                "sections": [
                    {
                        "title": "Options",
                        "rows": [{"id": r.payload, "title": r.title} for r in replies],
                    }
                ],
            },
        }
    return None


def _names(contacts: Any) -> dict[str, str]:
    """wa_id -> profile name; a malformed contact only loses its name, never a message."""
    names: dict[str, str] = {}
    for contact in contacts if isinstance(contacts, list) else []:
        if not isinstance(contact, dict):
            continue
        wa_id, profile = contact.get("wa_id"), contact.get("profile")
        name = profile.get("name") if isinstance(profile, dict) else None
        if isinstance(wa_id, str) and isinstance(name, str):
            names[wa_id] = name
    return names


def _message(message: dict[str, Any], names: dict[str, str]) -> list[Event]:
    wa_id = message["from"]
    if not isinstance(wa_id, str) or not wa_id.isdigit():
        raise ValueError("from is not a WhatsApp id")
    sender = Sender(external_id=wa_id, name=names.get(wa_id), phone=f"+{wa_id}")
    external_id, kind = message["id"], message["type"]
    if not isinstance(kind, str):
        raise TypeError("type is not a string")
    sent_at = moment(message["timestamp"])
    if kind == "interactive":
        interactive = message["interactive"]
        reply = interactive.get("button_reply") or interactive.get("list_reply")
        return [
            Postback(
                external_id=external_id,
                sender=sender,
                payload=reply["id"],
                title=reply.get("title"),
                sent_at=sent_at,
            )
        ]
    if kind == "button":  # a template's quick-reply button
        button = message["button"]
        return [
            Postback(
                external_id=external_id,
                sender=sender,
                payload=button["payload"],
                title=button.get("text"),
                sent_at=sent_at,
            )
        ]
    if kind == "reaction":
        reaction = message["reaction"]
        return [
            Reaction(
                external_id=external_id,
                sender=sender,
                emoji=reaction.get("emoji", ""),
                to_external_id=reaction["message_id"],
                sent_at=sent_at,
            )
        ]
    parts = _parts(message)
    if not parts:
        log.info("whatsapp: message kind not supported", extra={"type": kind})
        return []
    return [
        MessageReceived(external_id=external_id, sender=sender, parts=tuple(parts), sent_at=sent_at)
    ]


def _parts(message: dict[str, Any]) -> list[Part]:
    kind = message["type"]
    if kind == "text":
        return [TextPart(text=message["text"]["body"])]
    if kind in MEDIA:
        media = message[kind]
        return [
            MediaPart(
                type=MEDIA[kind],
                media_id=media["id"],
                mime_type=media.get("mime_type"),
                name=media.get("filename"),
                caption=media.get("caption"),
            )
        ]
    if kind == "location":
        loc = message["location"]
        return [
            LocationPart(
                latitude=loc["latitude"],
                longitude=loc["longitude"],
                name=loc.get("name"),
                address=loc.get("address"),
            )
        ]
    if kind == "contacts":
        return [
            ContactCardPart(
                name=c["name"]["formatted_name"],
                phones=tuple(p["phone"] for p in listed(c.get("phones"))),
                emails=tuple(e["email"] for e in listed(c.get("emails"))),
            )
            for c in listed(message["contacts"])
        ]
    return []


def _status(status: dict[str, Any]) -> StatusChanged:
    errors = listed(status.get("errors"))
    return StatusChanged(
        external_id=status["id"],
        status=status["status"],
        error=explain(errors[0]) if errors else None,
    )
