"""The broadcast runner (being written)."""

from __future__ import annotations

from aiohttp import web


class BroadcastRunner:
    def notify(self) -> None:
        """Wake the runner: a broadcast started or resumed in this process."""


RUNNER: web.AppKey[BroadcastRunner] = web.AppKey("broadcast_runner", BroadcastRunner)
