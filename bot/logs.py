"""Structured log lines: `ts level logger msg key=value ...` (logfmt), one per event.

Pass context with `extra={...}`; never put message bodies or personal data there
above debug level.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# what a hostile path or name could use to forge or hide log lines: control characters
# (NUL, ESC's terminal sequences, newlines), line separators and bidi controls
_CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_PLAIN = re.compile(f'[^ ="{_CONTROLS}]+')


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        fields += [
            f"{key}={_quote(str(value))}"
            for key, value in vars(record).items()
            if key not in _RESERVED
        ]
        line = " ".join(fields)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value
    value = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _UNSAFE.sub(_escape, value) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char) or f"\\u{ord(char):04x}"


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.asynccontextmanager
async def running(*runs: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run each of `runs` as a background task until the block ends: a crash is logged,
    never lost silently, and at the end every task is cancelled and awaited."""
    tasks = [asyncio.create_task(run()) for run in runs]
    for task in tasks:
        task.add_done_callback(_report_crash)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger(__name__).error("background task crashed", exc_info=task.exception())
