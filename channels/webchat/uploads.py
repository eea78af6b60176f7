"""Visitor uploads: size-limited, type-checked by content, served back unguessably named.

Sessions are anonymous and free to make, so each one gets a quota (files and bytes
per window) and files no message ever named are swept (`channels.webchat.cleanup`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from bot.errors import ChanCenterError, InvalidPayload, NotFound, PayloadTooLarge
from bot.pipeline.untrusted import clean_text

# What a visitor may send, and the bytes each such file starts with.
ALLOWED: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
    "text/plain": (),
}
CHUNK = 64 * 1024
FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
ATTACHABLE = 0.9
"""A file may be attached during this share of the orphan grace period, so the sweep
never deletes a file whose message is being stored at that moment."""

SessionKey = tuple[str, str]  # (channel id, visitor id)


@dataclass(frozen=True)
class Quota:
    """What one visitor session may upload per `window` seconds."""

    files: int = 20
    bytes: int = 25_000_000
    window: float = 3600.0


class QuotaExceeded(ChanCenterError):
    """The session used its quota: answer 429 with `Retry-After: retry_after`."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    channel_id: str
    visitor_id: str
    name: str
    mime_type: str
    size: int

    @property
    def kind(self) -> str:
        return "image" if self.mime_type.startswith("image/") else "file"

    @property
    def url(self) -> str:
        return f"/webchat/files/{self.file_id}"


@dataclass
class _Slot:
    """One upload in a session's window; `size` grows while the file streams in, so
    concurrent uploads of one session see each other's bytes."""

    at: float
    size: int = 0


class UploadStore:
    def __init__(
        self,
        root: Path,
        max_bytes: int,
        quota: Quota | None = None,
        keep_orphans: float = 24 * 3600,
        idle_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.quota = quota or Quota(bytes=max(Quota.bytes, max_bytes))
        self.keep_orphans = keep_orphans
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._usage: dict[SessionKey, list[_Slot]] = {}
        self._pruned = clock()

    async def save(self, part: BodyPartReader, channel_id: str, visitor_id: str) -> StoredFile:
        """Stream `part` to disk, within the size limit and the session's quota."""
        mime = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if mime not in ALLOWED:
            shown = clean_text(mime)[:60] or "unknown"
            raise InvalidPayload(
                f"files of type {shown!r} are not accepted; send one of: {', '.join(ALLOWED)}"
            )
        key = (channel_id, visitor_id)
        slot = self._reserve(key)
        try:
            return await self._write(part, mime, key, slot)
        except BaseException:
            self._release(key, slot)  # nothing was kept: it costs nothing
            raise

    async def _write(
        self, part: BodyPartReader, mime: str, key: SessionKey, slot: _Slot
    ) -> StoredFile:
        self.root.mkdir(parents=True, exist_ok=True)
        file_id = secrets.token_urlsafe(24)
        path = self.root / file_id
        head = b""
        try:
            with path.open("wb") as out:
                while chunk := await self._chunk(part):
                    slot.size += len(chunk)
                    if slot.size > self.max_bytes:
                        raise PayloadTooLarge(f"file larger than {self.max_bytes} bytes")
                    if self._used(key)[1] > self.quota.bytes:
                        raise self._exceeded(key, f"{self.quota.bytes} bytes")
                    if len(head) < 16:
                        head += chunk[:16]
                    out.write(chunk)
            _check_content(mime, head)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        stored = StoredFile(
            file_id=file_id,
            channel_id=key[0],
            visitor_id=key[1],
            name=clean_text(Path(part.filename or "file").name)[:200] or "file",
            mime_type=mime,
            size=slot.size,
        )
        path.with_suffix(".json").write_text(json.dumps(asdict(stored)))
        return stored

    async def _chunk(self, part: BodyPartReader) -> bytes:
        """The next chunk; a sender that stalls is cut off (TimeoutError) like a slow body."""
        async with asyncio.timeout(self.idle_timeout):
            return await part.read_chunk(CHUNK)

    def _reserve(self, key: SessionKey) -> _Slot:
        """A slot in the session's window, or `QuotaExceeded` before anything is read."""
        files, size = self._used(key)
        if files >= self.quota.files:
            raise self._exceeded(key, f"{self.quota.files} files")
        if size >= self.quota.bytes:
            raise self._exceeded(key, f"{self.quota.bytes} bytes")
        slot = _Slot(self._clock())
        self._usage.setdefault(key, []).append(slot)
        return slot

    def _release(self, key: SessionKey, slot: _Slot) -> None:
        slots = self._usage.get(key, [])
        if slot in slots:
            slots.remove(slot)

    def _used(self, key: SessionKey) -> tuple[int, int]:
        """`(files, bytes)` of the session within the window; old slots are forgotten."""
        now = self._clock()
        if now - self._pruned > 60:  # sessions that went quiet must not pile up in memory
            self._pruned = now
            for k in list(self._usage):
                self._drop_old(k, now)
        slots = self._drop_old(key, now)
        return len(slots), sum(s.size for s in slots)

    def _drop_old(self, key: SessionKey, now: float) -> list[_Slot]:
        slots = [s for s in self._usage.get(key, ()) if now - s.at < self.quota.window]
        if slots:
            self._usage[key] = slots
        else:
            self._usage.pop(key, None)
        return slots

    def _exceeded(self, key: SessionKey, what: str) -> QuotaExceeded:
        slots = self._usage.get(key) or [_Slot(self._clock())]
        wait = max(1, int(slots[0].at + self.quota.window - self._clock()) + 1)
        window = f"{self.quota.window / 3600:g} hour(s)"
        return QuotaExceeded(
            f"this chat session may upload {what} per {window}; try again in {wait} s", wait
        )

    def get(self, file_id: str) -> tuple[StoredFile, Path]:
        if FILE_ID.fullmatch(file_id) is None:
            raise NotFound("no such file")
        meta = self.root / f"{file_id}.json"
        if not meta.is_file():
            raise NotFound("no such file")
        return StoredFile(**json.loads(meta.read_text())), self.root / file_id

    def attachable(self, file_id: str) -> bool:
        """False once the file is near its sweep: a message must not name it any more."""
        try:
            uploaded = (self.root / f"{file_id}.json").stat().st_mtime
        except FileNotFoundError:
            return False
        return time.time() - uploaded < self.keep_orphans * ATTACHABLE

    def older_than(self, cutoff: float) -> tuple[list[tuple[StoredFile, float]], list[Path]]:
        """Uploads stored before `cutoff` (epoch seconds) with that time, and leftovers
        without metadata (a crash between data and metadata). Blocking: run in a thread."""
        stored: list[tuple[StoredFile, float]] = []
        leftovers: list[Path] = []
        if not self.root.is_dir():
            return stored, leftovers
        with os.scandir(self.root) as entries:
            names = {e.name: e.stat().st_mtime for e in entries if e.is_file()}
        for name, mtime in names.items():
            file_id = name.removesuffix(".json")
            if mtime >= cutoff or (name == file_id and f"{name}.json" in names):
                continue
            if name == file_id:
                leftovers.append(self.root / name)
                continue
            try:
                meta = json.loads((self.root / name).read_text())
                stored.append((StoredFile(**meta), mtime))
            except (OSError, ValueError, TypeError):
                leftovers.append(self.root / name)
        return stored, leftovers

    def delete(self, file_id: str) -> None:
        (self.root / f"{file_id}.json").unlink(missing_ok=True)
        (self.root / file_id).unlink(missing_ok=True)


def _check_content(mime: str, head: bytes) -> None:
    if not head:
        raise InvalidPayload("the file is empty")
    signatures = ALLOWED[mime]
    if mime == "text/plain":
        if b"\x00" in head:
            raise InvalidPayload("a text file must not contain binary data")
        return
    if not any(head.startswith(sig) for sig in signatures):
        raise InvalidPayload(f"the file's content is not {mime}")


async def serve_file(store: UploadStore, file_id: str) -> web.FileResponse:
    stored, path = store.get(file_id)
    disposition = "inline" if stored.kind == "image" else "attachment"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": stored.mime_type,
            "Content-Disposition": f'{disposition}; filename="{_header_safe(stored.name)}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'",
            "Cache-Control": "private, max-age=86400",
        },
    )


def _header_safe(name: str) -> str:
    return "".join(c for c in name if c.isascii() and c.isprintable() and c not in '"\\') or "file"
