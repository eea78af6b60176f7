"""Bot Framework activities to unified events and back, with botbuilder's own types.

Pure: no I/O. A contact is one user on one Azure channel (`msteams:29:1ab...`); their
identity keeps the conversation reference of where they last wrote (botbuilder's
`ConversationReference`, as JSON), from which every message to them is sent, however
long after: a Teams channel thread they wrote in is answered in that thread.

Teams numbers activities per conversation, so a message's external id is its activity
id qualified by (a hash of) its conversation: a redelivery hits the same id, two
conversations' equal numbers do not.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from typing import Any
from urllib.parse import urlsplit

from botbuilder.core import TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    CardAction,
    ConversationReference,
    HeroCard,
    SuggestedActions,
)

from bot.errors import NotFound
from bot.model import (
    ContactBlocked,
    ContactCardPart,
    Event,
    LocationPart,
    MediaPart,
    MessageReceived,
    Outbound,
    Postback,
    QuickRepliesPart,
    Reaction,
    Sender,
    TextPart,
)
from channels.render import Capabilities, fits, numbered, split_text

TEAMS = "msteams"
CAPABILITIES = Capabilities(
    text_limit=20_000,  # Teams takes about 28 KB a message, escapes and card included
    quick_replies=6,  # a hero card's buttons, suggested actions elsewhere
    button_title=100,
    payload_bytes=1000,
    per_second=50,  # an app's requests a second across its conversations
    per_chat_per_second=7,
)
EXTERNAL_ID = 128  # the identities' and messages' column
REACTIONS = {
    "like": "👍",
    "heart": "❤️",
    "laugh": "😆",
    "surprised": "😮",
    "sad": "😢",
    "angry": "😠",
}
HERO_CARD = "application/vnd.microsoft.card.hero"
TEAMS_FILE = "application/vnd.microsoft.teams.file.download.info"
TOKEN_HOSTS = (".asm.skype.com", ".trafficmanager.net", ".botframework.com")  # Microsoft's
# Teams' markdown: what would format instead of showing (HTML too, which it also renders)
_INLINE = re.compile(r"([\\`*_~#\[\]|])")
_LIST_ITEM = re.compile(r"^(\s*)(?:([-+])|(\d+)\.)(?=\s)", re.MULTILINE)
_ADDED = ("add", "add-upgrade")


def message_key(conversation_id: str, activity_id: str) -> str:
    """The external id of the activity `activity_id` in that conversation."""
    digest = hashlib.sha256(conversation_id.encode()).hexdigest()[:16]
    key = f"{activity_id}@{digest}"
    if len(key) > EXTERNAL_ID:
        key = hashlib.sha256(key.encode()).hexdigest()
    return key


def sender_of(activity: Activity) -> Sender:
    user = activity.from_property
    external_id = f"{activity.channel_id}:{user.id}"
    if len(external_id) > EXTERNAL_ID:
        raise ValueError("user id too long")
    reference = TurnContext.get_conversation_reference(activity)
    reference.activity_id = None  # not what it replies to: the same address every time
    tenant = (activity.channel_data or {}).get("tenant", {}).get("id")
    if tenant and reference.conversation.tenant_id is None:  # Teams says it in channelData
        reference.conversation.tenant_id = tenant
    address = json.dumps(reference.serialize(), sort_keys=True, separators=(",", ":"))
    locale = activity.locale if activity.locale and len(activity.locale) <= 16 else None
    return Sender(external_id=external_id, name=user.name or None, language=locale, address=address)


def events_of(activity: Activity) -> list[Event]:
    """The events one activity makes; kinds the hub has no use for make none."""
    if activity.type == ActivityTypes.message:
        return _message(activity)
    if activity.type == ActivityTypes.conversation_update:
        bot = activity.recipient.id
        if any(m.id == bot for m in activity.members_added or ()):
            return [
                Postback(
                    external_id=message_key(activity.conversation.id, activity.id or "added"),
                    sender=sender_of(activity),
                    payload="event:WELCOME",
                )
            ]
        if any(m.id == bot for m in activity.members_removed or ()):
            return [ContactBlocked(sender=sender_of(activity), blocked=True)]
        return []
    if activity.type == ActivityTypes.installation_update:
        added = activity.action in _ADDED
        return [ContactBlocked(sender=sender_of(activity), blocked=not added)]
    if activity.type == ActivityTypes.message_reaction:
        return _reactions(activity)
    return []


def _message(activity: Activity) -> list[Event]:
    key = message_key(activity.conversation.id, activity.id)
    sender = sender_of(activity)
    text = _without_mention(activity).strip()
    if activity.value is not None:  # a card's button: messageBack, postBack, Action.Submit
        value = activity.value
        payload = value.get("payload") if isinstance(value, dict) else None
        if not isinstance(payload, str) or not payload:
            payload = json.dumps(value, sort_keys=True)
        return [Postback(external_id=key, sender=sender, payload=payload, title=text or None)]
    parts: list[Any] = [TextPart(text=text)] if text else []
    service = activity.service_url
    parts.extend(p for a in activity.attachments or () if (p := _media(a, service)) is not None)
    if not parts:
        return []
    return [MessageReceived(external_id=key, sender=sender, parts=tuple(parts))]


def _without_mention(activity: Activity) -> str:
    """The text without the bot's @mention (Teams writes it in a channel): each mention
    of the bot once, where it is; the SDK's helper also deletes its name anywhere else."""
    text = activity.text or ""
    for entity in activity.entities or ():
        if entity.type != "mention":
            continue
        said = entity.additional_properties
        if said.get("mentioned", {}).get("id") == activity.recipient.id:
            text = text.replace(said.get("text") or "", "", 1)
    return text


def _media(attachment: Attachment, service_url: str | None) -> MediaPart | None:
    """A file or picture the contact sent; cards, and Teams' HTML copy of the text (no
    URL either), are not. A picture pasted into Teams is kept by the connector, whose URL
    wants the bot's token: it becomes a media id the hub's `/media/` proxy fetches."""
    kind = attachment.content_type or ""
    if kind == TEAMS_FILE and isinstance(attachment.content, dict):
        url = attachment.content.get("downloadUrl")  # pre-authenticated, for a while
        return MediaPart(type="file", url=url, name=attachment.name) if url else None
    url = attachment.content_url
    if not url:
        return None
    major = kind.partition("/")[0]
    kept = needs_token(url, service_url)
    return MediaPart(
        type=major if major in ("image", "audio", "video") else "file",  # type: ignore[arg-type]
        url=None if kept else url,
        media_id=media_id_of(url) if kept else None,
        mime_type=kind or None,
        name=attachment.name,
    )


def needs_token(url: str, service_url: str | None) -> bool:
    """Whether `url` is Microsoft's store of the conversation's files (the connector, or
    Teams' inline pictures at `*.asm.skype.com`): only such a URL is sent the bot's
    token, never another host an activity names."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return False
    if service_url and url.startswith(service_url.rstrip("/") + "/"):
        return True
    return parts.hostname.endswith(TOKEN_HOSTS)


def media_id_of(url: str) -> str:
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def url_of(media_id: str) -> str:
    """The URL in a media id (the hub signed the path it came in)."""
    padded = media_id + "=" * (-len(media_id) % 4)
    try:
        url = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        url = ""
    if not url.startswith("https://"):
        raise NotFound("no such file")
    return url


def _reactions(activity: Activity) -> list[Event]:
    conversation = activity.conversation.id
    sender = sender_of(activity)
    to = message_key(conversation, activity.reply_to_id)
    events: list[Event] = []
    for added, reactions in ((True, activity.reactions_added), (False, activity.reactions_removed)):
        for reaction in reactions or ():
            events.append(
                Reaction(
                    external_id=message_key(conversation, f"{activity.id}:{reaction.type}"),
                    sender=sender,
                    emoji=REACTIONS.get(reaction.type, reaction.type) if added else "",
                    to_external_id=to,
                )
            )
    return events


# --- out ---------------------------------------------------------------------------


def escape(text: str) -> str:
    """Text shown as written in Teams: the characters of its markdown and HTML escaped, and
    a line that would start a list (`- `, `1. `) kept a line."""
    text = _INLINE.sub(r"\\\1", html.escape(text, quote=False))
    return _LIST_ITEM.sub(lambda m: f"{m[1]}\\{m[2]}" if m[2] else f"{m[1]}{m[3]}\\.", text)


def reference_of(address: str) -> ConversationReference:
    return ConversationReference().deserialize(json.loads(address))


def render(outbound: Outbound, reference: ConversationReference) -> list[Activity]:
    """The activities of one message, addressed from the stored reference; buttons and
    files go with the last."""
    teams = reference.channel_id == TEAMS
    texts: list[str] = []
    attachments: list[Attachment] = []
    buttons: list[CardAction] = []
    for part in outbound.parts:
        if isinstance(part, TextPart):
            texts.append(escape(part.text))
        elif isinstance(part, QuickRepliesPart):
            if fits(part.replies, CAPABILITIES, CAPABILITIES.quick_replies):
                buttons = [_button(r.title, r.payload, teams) for r in part.replies]
            else:
                texts.append(escape(numbered(part.replies)))
        elif isinstance(part, MediaPart) and part.url:
            attachments.append(
                Attachment(
                    content_type=part.mime_type or _GUESSED[part.type],
                    content_url=part.url,
                    name=part.name,
                )
            )
            if part.caption:
                texts.append(escape(part.caption))
        elif isinstance(part, LocationPart):
            where = f"https://www.bing.com/maps?cp={part.latitude}~{part.longitude}"
            texts.append(escape(" ".join(filter(None, (part.name, part.address, where)))))
        elif isinstance(part, ContactCardPart):
            texts.append(escape(" ".join((part.name, *part.phones, *part.emails))))
    if outbound.sender_name and texts:
        texts[0] = f"**{escape(outbound.sender_name)}**: {texts[0]}"
    chunks = split_text("\n\n".join(texts), CAPABILITIES.text_limit) if texts else [""]
    made = [_activity(chunk, reference) for chunk in chunks]
    last = made[-1]
    if buttons and teams:  # Teams shows suggested actions in personal chats only: a card
        card = HeroCard(text=last.text or None, buttons=buttons)
        attachments.append(Attachment(content_type=HERO_CARD, content=card.serialize()))
        last.text = None
    elif buttons:
        last.suggested_actions = SuggestedActions(actions=buttons)
    last.attachments = attachments or None
    return [a for a in made if a.text or a.attachments or a.suggested_actions]


_GUESSED = {
    "image": "image/*",
    "audio": "audio/*",
    "video": "video/*",
    "sticker": "image/*",
    "file": "application/octet-stream",
}


def _activity(text: str, reference: ConversationReference) -> Activity:
    activity = Activity(type=ActivityTypes.message, text=text or None, text_format="markdown")
    TurnContext.apply_conversation_reference(activity, reference)
    tenant = reference.conversation.tenant_id
    if reference.channel_id == TEAMS and tenant:  # what Teams asks of a proactive message
        activity.channel_data = {"tenant": {"id": tenant}}
    return activity


def _button(title: str, payload: str, teams: bool) -> CardAction:
    """A button whose payload comes back as the message's `value`: `messageBack` in
    Teams (the title shows as the contact's message), `postBack` elsewhere."""
    if teams:
        return CardAction(
            type="messageBack",
            title=title,
            text=title,
            display_text=title,
            value={"payload": payload},
        )
    return CardAction(type="postBack", title=title, value={"payload": payload})
