"""Opt-out keywords: STOP unsubscribes a contact from broadcasts, START subscribes again."""

from __future__ import annotations

from bot.model import Inbound
from bot.pipeline.handling import HandlerContext


async def opt_out(event: Inbound | None, ctx: HandlerContext) -> bool:
    """Entry point `chancenter.handlers:03-opt-out`."""
    return False
