"""The Bot API HTTP session shared by every Telegram bot of the process.

Kept apart from `channels.telegram` so that registering it does not import
aiogram: processes without Telegram channels never pay for that import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from bot.keys import SETTINGS

if TYPE_CHECKING:
    from aiogram.client.session.aiohttp import AiohttpSession


class SessionHolder:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self._session: AiohttpSession | None = None

    def get(self) -> AiohttpSession:
        if self._session is None:
            from aiogram.client.session.aiohttp import AiohttpSession
            from aiogram.client.telegram import TelegramAPIServer

            self._session = AiohttpSession(api=TelegramAPIServer.from_base(self.base))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


SESSION = web.AppKey("telegram_session", SessionHolder)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    holder = app[SESSION] = SessionHolder(str(app[SETTINGS].telegram_api_base))
    yield
    await holder.close()


def setup(app: web.Application) -> None:
    """Entry point `chancenter.extensions:telegram`."""
    app.cleanup_ctx.append(_lifecycle)
