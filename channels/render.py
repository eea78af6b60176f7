"""Rendering helpers every channel shares, driven by its capability table.

A channel never decides with scattered ifs what it can show: it declares
`Capabilities`, and these helpers split text and degrade buttons from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.model import QuickReply


@dataclass(frozen=True)
class Capabilities:
    """What one platform can show and how fast it may be sent to.

    Example (Telegram): `Capabilities(text_limit=4096, quick_replies=100, ...)`.
    """

    text_limit: int
    quick_replies: int  # buttons shown natively; more than this degrade to a numbered list
    button_title: int  # longest button title the platform accepts
    payload_bytes: int  # longest button payload
    list_rows: int = 0  # a list picker (WhatsApp) for more buttons than `quick_replies`
    media_by_url: bool = True
    window_hours: int | None = None  # replies allowed this long after the contact's last message
    per_second: float = 30.0  # whole account
    per_chat_per_second: float | None = None


def split_text(text: str, limit: int) -> list[str]:
    """Cut at the last paragraph, line or word break that fits; hard-cut only when none does."""
    chunks: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        # the strongest break in the second half of the window, else a hard cut
        cut = next(
            (at for sep in ("\n\n", "\n", " ") if (at := window.rfind(sep)) >= limit // 2),
            limit,
        )
        chunks.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text or not chunks:
        chunks.append(text)
    return chunks


def numbered(replies: tuple[QuickReply, ...]) -> str:
    """The text fallback for buttons a platform cannot show: reply with the number."""
    return "\n".join(f"{n}. {reply.title}" for n, reply in enumerate(replies, 1))


def fits(replies: tuple[QuickReply, ...], caps: Capabilities, limit: int) -> bool:
    """Whether these buttons can be shown natively within `limit` buttons."""
    return len(replies) <= limit and all(
        len(r.title) <= caps.button_title and len(r.payload.encode()) <= caps.payload_bytes
        for r in replies
    )
