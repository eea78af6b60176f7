"""Run the real hub as a subprocess (`python -m bot serve`) for scenario tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """`chancenter serve` (or, with `command=("worker",)`, a worker) in a subprocess."""

    def __init__(
        self, root: Path, env: dict[str, str] | None = None, command: tuple[str, ...] = ("serve",)
    ) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command
        self.env = {
            **os.environ,
            "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'hub.db'}",
            "CHANCENTER_DATA_DIR": str(root / "data"),
            "CHANCENTER_PORT": str(self.port),
            "CHANCENTER_SECRET_KEY": "scenario-secret",
            **(env or {}),
        }
        self.log = root / f"{command[0]}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.root / "hub.db"

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, "-m", "bot", *self.command], env=self.env, stdout=log, stderr=log
            )
        if self.command[0] != "serve":
            await self._logged("worker is running")
            return
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"hub exited: {self.log.read_text()}")
                try:
                    async with session.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await _sleep(0.1)
        raise RuntimeError("hub did not become ready in 30s")

    async def webchat_channel(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(self.url) as resp:
            match = re.search(r'data-channel="([^"]+)"', await resp.text())
        assert match, "the demo page has no widget"
        return match.group(1)

    async def _logged(self, text: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited: {self.log.read_text()}")
            if self.log.exists() and text in self.log.read_text():
                return
            await _sleep(0.1)
        raise RuntimeError(f"{self.command[0]} did not log {text!r} in 30s")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, like a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
