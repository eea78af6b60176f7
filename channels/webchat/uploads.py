"""Visitor uploads: size-limited, type-checked by content, served back unguessably named."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from bot.errors import InvalidPayload, NotFound, PayloadTooLarge

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


class UploadStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    async def save(self, part: BodyPartReader, channel_id: str, visitor_id: str) -> StoredFile:
        mime = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if mime not in ALLOWED:
            raise InvalidPayload(
                f"files of type {mime or 'unknown'!r} are not accepted; "
                f"send one of: {', '.join(ALLOWED)}"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        file_id = secrets.token_urlsafe(24)
        path = self.root / file_id
        size, head = 0, b""
        try:
            with path.open("wb") as out:
                while chunk := await part.read_chunk(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(f"file larger than {self.max_bytes} bytes")
                    if len(head) < 16:
                        head += chunk[:16]
                    out.write(chunk)
            _check_content(mime, head)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        stored = StoredFile(
            file_id=file_id,
            channel_id=channel_id,
            visitor_id=visitor_id,
            name=Path(part.filename or "file").name[:200],
            mime_type=mime,
            size=size,
        )
        path.with_suffix(".json").write_text(json.dumps(asdict(stored)))
        return stored

    def get(self, file_id: str) -> tuple[StoredFile, Path]:
        if not file_id.replace("-", "").replace("_", "").isalnum():
            raise NotFound("no such file")
        meta = self.root / f"{file_id}.json"
        if not meta.is_file():
            raise NotFound("no such file")
        return StoredFile(**json.loads(meta.read_text())), self.root / file_id


def _check_content(mime: str, head: bytes) -> None:
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
