"""The real hub as a subprocess, for scenarios that crash it or drive it from a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.scenarios.hub import HubProcess


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubProcess]:
    process = HubProcess(tmp_path)
    await process.start()
    yield process
    process.stop()
