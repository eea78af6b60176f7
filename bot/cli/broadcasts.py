"""`chancenter broadcasts create|list|show|start|pause|resume|cancel|recipients`.

Declarations only (see `bot.cli.commands`): each command is one call to
`/api/v1/broadcasts`. `create` takes flat flags and `_new_broadcast` nests them into the
request the API takes, so the API alone decides what is valid.
"""

from __future__ import annotations

from typing import Any

from bot.cli.args import ID, Call

# the API's lists (`broadcasts.definition`), repeated here so `--help` imports nothing
# heavy; a test keeps them equal
RECIPIENT_STATUSES = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "skipped",
    "interrupted",
    "cancelled",
)
MESSENGER_TAGS = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE")
MEDIA_TYPES = ("image", "audio", "video", "file", "sticker")

BROADCAST, ONE = "/broadcasts/{broadcast_id}", (("broadcast_id", ID),)


def _new_broadcast(values: dict[str, Any]) -> dict[str, Any]:
    """`POST /api/v1/broadcasts`'s body from `create`'s flags."""
    from bot.errors import ChanCenterError

    body = {
        key: values[key]
        for key in ("name", "channel_id", "view_id", "contact_ids", "send_at")
        if key in values
    }
    message: dict[str, Any] = {
        key: values[key] for key in ("text", "shortcut_id", "tag") if key in values
    }
    if "template" in values:
        template: dict[str, Any] = {"name": values["template"], "params": values.get("params", [])}
        if "language" in values:
            template["language"] = values["language"]
        message["template"] = template
    elif "language" in values or "params" in values:
        raise ChanCenterError("--language and --param go with --template NAME")
    types = values.get("media_types") or ["image"]
    urls = values.get("media_urls", [])
    if len(types) > max(len(urls), 1):
        raise ChanCenterError("more --media-type than --media-url: one type for each URL")
    message["media"] = [
        {"type": types[min(n, len(types) - 1)], "url": url} for n, url in enumerate(urls)
    ]
    message["quick_replies"] = [_quick_reply(text) for text in values.get("quick_replies", [])]
    body["message"] = {key: value for key, value in message.items() if value != []}
    if values.get("keep_person_chats"):
        body["settings"] = {"skip_with_person": False}
    return body


def _quick_reply(text: str) -> dict[str, str]:
    """`Yes` (its payload the same) or `Yes=YES_PLEASE`."""
    title, _, payload = text.partition("=")
    return {"title": title, "payload": payload or title}


CREATE = (
    ("name", {"help": "unique in the space, e.g. 'December offer'"}),
    (
        "--channel",
        {"dest": "channel_id", "required": True, "help": "the channel id `channels list` shows"},
    ),
    ("--view-id", {**ID, "help": "send to every contact this shared view selects"}),
    (
        "--contact",
        {
            **ID,
            "action": "append",
            "dest": "contact_ids",
            "metavar": "CONTACT_ID",
            "help": "send to this contact (repeatable), instead of --view-id",
        },
    ),
    ("--text", {"help": "the message, e.g. 'Hi {{contact.first_name}}, 20%% off until Sunday'"}),
    ("--shortcut-id", {**ID, "help": "send a shared shortcut's message"}),
    ("--template", {"metavar": "NAME", "help": "WhatsApp: an approved message template"}),
    ("--language", {"help": "the template's language code (default en_US)"}),
    (
        "--param",
        {"action": "append", "dest": "params", "help": "the template's {{1}}, {{2}}... in order"},
    ),
    ("--media-url", {"action": "append", "dest": "media_urls", "metavar": "URL"}),
    (
        "--media-type",
        {
            "action": "append",
            "dest": "media_types",
            "choices": MEDIA_TYPES,
            "help": "the type of each --media-url, in order (default: image)",
        },
    ),
    (
        "--quick-reply",
        {"action": "append", "dest": "quick_replies", "metavar": "TITLE[=PAYLOAD]"},
    ),
    ("--tag", {"choices": MESSENGER_TAGS, "help": "Messenger: the message tag that allows it"}),
    (
        "--send-at",
        {
            "metavar": "WHEN",
            "help": "start by itself then, e.g. 2026-12-10T09:00 (in the space's time zone "
            "unless it has an offset)",
        },
    ),
    (
        "--keep-person-chats",
        {
            "action": "store_true",
            "help": "also send to contacts a person is talking with (skipped by default)",
        },
    ),
)

BROADCASTS: dict[str, tuple[str, dict[str, Call]]] = {
    "broadcasts": (
        "one message to a segment of contacts, paced, with each recipient's fate",
        {
            "create": Call(
                "POST",
                "/broadcasts",
                "create a broadcast to a shared view or listed contacts (a draft until "
                "started, or scheduled with --send-at)",
                CREATE,
                shape=_new_broadcast,
            ),
            "list": Call(
                "GET",
                "/broadcasts",
                "list broadcasts, newest first",
                (("--limit", ID), ("--before", {**ID, "help": "older than this id"})),
            ),
            "show": Call(
                "GET",
                BROADCAST,
                "show a broadcast and its recipients by status (--watch: a progress bar "
                "until it completes, is cancelled or paused)",
                ONE,
                watch=True,
            ),
            "start": Call("POST", f"{BROADCAST}/start", "start a broadcast now", ONE),
            "pause": Call("POST", f"{BROADCAST}/pause", "pause a running broadcast", ONE),
            "resume": Call("POST", f"{BROADCAST}/resume", "resume a paused broadcast", ONE),
            "cancel": Call(
                "POST",
                f"{BROADCAST}/cancel",
                "cancel a broadcast: whoever it has not reached yet, it never will",
                ONE,
            ),
            "recipients": Call(
                "GET",
                f"{BROADCAST}/recipients",
                "a broadcast's recipients: status, and why one was skipped or failed "
                "(--csv for a spreadsheet)",
                (
                    *ONE,
                    ("--status", {"choices": RECIPIENT_STATUSES}),
                    ("--limit", ID),
                    ("--after", {**ID, "help": "after this recipient id"}),
                ),
                csv=True,
            ),
        },
    ),
}
