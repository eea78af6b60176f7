"""Visitor uploads: who may upload what, how much, and what happens to files never sent."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.keys import DB, SETTINGS
from bot.settings import Settings
from channels.webchat.cleanup import sweep
from channels.webchat.server import UPLOADS
from channels.webchat.uploads import Quota
from tests.channels.webchat.widget import PNG, Visitor, upload
from tests.conftest import add_channel


async def test_image_upload_is_sent_as_an_image_part(client: TestClient, visitor: Visitor) -> None:
    resp = await upload(client, visitor.channel, visitor.token, PNG, "image/png", "cat.png")
    assert resp.status == 200, await resp.text()
    meta = await resp.json()
    assert meta["mime_type"] == "image/png" and meta["size"] == len(PNG)

    served = await client.get(meta["url"])
    assert served.status == 200 and await served.read() == PNG
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"

    await visitor.ws.send_json(
        {"type": "message", "id": "img", "attachments": [{"file_id": meta["file_id"]}]}
    )
    assert (await visitor.recv("ack"))["message_id"]
    again = Visitor(client, visitor.channel)
    history = await again.connect(visitor.token)
    assert history[0]["parts"][0]["type"] == "image"
    assert history[0]["parts"][0]["url"] == meta["url"]


async def test_upload_rules(client: TestClient, app: web.Application, visitor: Visitor) -> None:
    no_token = await upload(client, visitor.channel, None, PNG, "image/png")
    assert no_token.status == 401
    exe = await upload(client, visitor.channel, visitor.token, b"MZ..", "application/x-msdownload")
    assert exe.status == 400 and "not accepted" in (await exe.json())["detail"]
    disguised = await upload(client, visitor.channel, visitor.token, b"<script>", "image/png")
    assert disguised.status == 400 and "not image/png" in (await disguised.json())["detail"]
    limit = app[SETTINGS].max_upload_bytes
    too_big = await upload(client, visitor.channel, visitor.token, b"a" * (limit + 1), "text/plain")
    assert too_big.status == 413
    # nothing refused is left on disk
    root = app[UPLOADS].root
    assert not root.exists() or list(root.iterdir()) == []


async def test_another_visitors_file_cannot_be_attached(
    client: TestClient, visitor: Visitor
) -> None:
    meta = await (await upload(client, visitor.channel, visitor.token, PNG, "image/png")).json()
    thief = Visitor(client, visitor.channel)
    await thief.connect()
    await thief.ws.send_json(
        {"type": "message", "id": "x", "attachments": [{"file_id": meta["file_id"]}]}
    )
    assert (await thief.recv("error"))["code"] == "invalid_message"


def stored_files(app: web.Application) -> list[Path]:
    root = app[UPLOADS].root
    return sorted(root.iterdir()) if root.exists() else []


def multipart(body: bytes, boundary: str = "XyZ") -> tuple[dict[str, str], bytes]:
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body


def file_part(data: bytes, mime: str | None = "text/plain", field: str = "file") -> bytes:
    head = f'--XyZ\r\nContent-Disposition: form-data; name="{field}"; filename="a.txt"\r\n'
    if mime is not None:
        head += f"Content-Type: {mime}\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n--XyZ--\r\n"


BAD_REQUESTS: list[tuple[str, dict[str, str], bytes, int]] = [
    ("no body at all", {}, b"", 400),
    ("empty multipart body", *multipart(b""), 400),
    ("multipart without boundary", {"Content-Type": "multipart/form-data"}, b"--x--", 400),
    ("multipart garbage", *multipart(b"\x00\xff" * 100), 400),
    ("json instead", {"Content-Type": "application/json"}, b'{"file": "x"}', 400),
    ("form instead", {"Content-Type": "application/x-www-form-urlencoded"}, b"file=x", 400),
    ("wrong field", *multipart(file_part(b"hi", field="upload")), 400),
    ("empty file", *multipart(file_part(b"")), 400),
    ("part without type", *multipart(file_part(b"hi", mime=None)), 400),
    ("part with odd type", *multipart(file_part(b"hi", mime="text/plain\x00; x=1")), 400),
    ("closing boundary only", *multipart(b"--XyZ--\r\n"), 400),
]


@pytest.mark.parametrize(
    ("why", "headers", "body", "status"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
async def test_malformed_upload_gets_its_4xx_and_stores_nothing(
    client: TestClient,
    app: web.Application,
    visitor: Visitor,
    caplog: pytest.LogCaptureFixture,
    why: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    headers = {**headers, "Authorization": f"Bearer {visitor.token}"}
    resp = await client.post(
        f"/webchat/upload?channel={visitor.channel}", data=body, headers=headers
    )
    assert resp.status == status, await resp.text()
    problem = await resp.json()
    assert problem["status"] == status and problem["detail"]
    assert stored_files(app) == []
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_who_may_upload(client: TestClient, app: web.Application, visitor: Visitor) -> None:
    assert visitor.token is not None
    forged = visitor.token[:-4] + "AAAA"
    for authorization, status in [
        (None, 401),
        ("", 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        ("Bearer garbage", 401),
        (f"Bearer {forged}", 401),
        (f"Basic {visitor.token}", 401),
        (f"Bearer {visitor.token}.{visitor.token}", 401),
    ]:
        headers = {} if authorization is None else {"Authorization": authorization}
        body, mp = multipart(file_part(b"hi"))[1], multipart(b"")[0]
        resp = await client.post(
            f"/webchat/upload?channel={visitor.channel}", data=body, headers={**headers, **mp}
        )
        assert resp.status == status, (authorization, await resp.text())
        assert "session token" in (await resp.json())["detail"]
    echo = await add_channel(app, "echo")
    for channel, status in [(None, 400), ("missing", 404), (echo, 404)]:
        where = "" if channel is None else f"?channel={channel}"
        resp = await client.post(f"/webchat/upload{where}", data=b"x")
        assert resp.status == status, (channel, await resp.text())
    assert stored_files(app) == []


async def test_oversized_upload_is_refused_before_it_is_read(
    client: TestClient, app: web.Application, visitor: Visitor
) -> None:
    """A declared length over the limit is answered 413 while the body is still coming."""
    limit = app[SETTINGS].max_upload_bytes
    host, port = client.server.host, client.server.port
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /webchat/upload?channel={visitor.channel} HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Bearer {visitor.token}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {limit * 10}\r\n\r\n"
    )
    writer.write(head.encode() + file_part(b"a" * 1000)[:-10])
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 5)
    assert status_line.split()[1] == b"413", status_line
    writer.close()
    assert stored_files(app) == []


async def test_upload_quota_per_session(
    client: TestClient, app: web.Application, visitor: Visitor, webchat_channel: str
) -> None:
    store = app[UPLOADS]
    store.quota = Quota(files=3, bytes=1000, window=3600)
    for _ in range(3):
        ok = await upload(client, visitor.channel, visitor.token, b"x" * 10, "text/plain")
        assert ok.status == 200, await ok.text()
    refused = await upload(client, visitor.channel, visitor.token, b"x" * 10, "text/plain")
    assert refused.status == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    problem = await refused.json()
    assert problem["status"] == 429 and "3 files" in problem["detail"]
    assert len(stored_files(app)) == 3 * 2  # each file and its metadata

    # bytes: another session may send 1000 bytes in all, however it splits them
    other = Visitor(client, webchat_channel)
    await other.connect()
    assert (
        await upload(client, other.channel, other.token, b"y" * 600, "text/plain")
    ).status == 200
    over = await upload(client, other.channel, other.token, b"y" * 600, "text/plain")
    assert over.status == 429 and "1000 bytes" in (await over.json())["detail"]
    assert (
        await upload(client, other.channel, other.token, b"y" * 400, "text/plain")
    ).status == 200
    assert len(stored_files(app)) == 5 * 2


async def test_concurrent_uploads_share_one_quota(
    client: TestClient, app: web.Application, visitor: Visitor
) -> None:
    """The burst of the issue: many uploads at once must not each see an empty quota."""
    app[UPLOADS].quota = Quota(files=5, bytes=10_000_000, window=3600)
    results = await asyncio.gather(
        *(
            upload(client, visitor.channel, visitor.token, b"z" * 50_000, "text/plain")
            for _ in range(20)
        )
    )
    assert sorted(r.status for r in results) == [200] * 5 + [429] * 15
    assert len(stored_files(app)) == 5 * 2


def age(app: web.Application, file_id: str, hours: float) -> None:
    then = time.time() - hours * 3600
    for path in (app[UPLOADS].root / file_id, app[UPLOADS].root / f"{file_id}.json"):
        os.utime(path, (then, then))


async def test_files_no_message_references_are_swept_after_the_grace_period(
    client: TestClient, app: web.Application, visitor: Visitor
) -> None:
    store = app[UPLOADS]

    async def put(data: bytes = PNG) -> str:
        resp = await upload(client, visitor.channel, visitor.token, data, "image/png")
        return (await resp.json())["file_id"]

    sent, orphan, young = await put(), await put(), await put()
    await visitor.ws.send_json({"type": "message", "id": "m", "attachments": [{"file_id": sent}]})
    assert (await visitor.recv("ack"))["message_id"]
    hours = store.keep_orphans / 3600
    age(app, sent, hours + 1)
    age(app, orphan, hours + 1)
    age(app, young, hours / 2)
    stray = store.root / "half-written"  # data whose metadata never got written
    stray.write_bytes(b"x")
    os.utime(stray, (time.time() - store.keep_orphans - 60,) * 2)

    assert await sweep(store, app[DB]) == 2
    left = {p.name for p in stored_files(app)}
    assert left == {sent, f"{sent}.json", young, f"{young}.json"}
    assert (await client.get(f"/webchat/files/{sent}")).status == 200
    assert (await client.get(f"/webchat/files/{orphan}")).status == 404
    # a file close to its sweep can no longer be attached (it could vanish under the message)
    age(app, young, hours - 0.01)
    await visitor.ws.send_json(
        {"type": "message", "id": "late", "attachments": [{"file_id": young}]}
    )
    error = await visitor.recv("error")
    assert error["code"] == "invalid_message" and "upload it again" in error["detail"]
    assert await sweep(store, app[DB]) == 0  # nothing else is old enough yet


async def test_sweep_runs_when_the_server_starts(
    aiohttp_client: Any, settings: Settings, plugins: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    root = settings.data_dir / "uploads"
    root.mkdir(parents=True)
    meta = {
        "file_id": "old",
        "channel_id": "c",
        "visitor_id": "v",
        "name": "a",
        "mime_type": "text/plain",
        "size": 1,
    }
    (root / "old").write_bytes(b"a")
    (root / "old.json").write_text(json.dumps(meta))
    then = time.time() - 30 * 24 * 3600
    for p in root.iterdir():
        os.utime(p, (then, then))
    client = await aiohttp_client(create_app(settings, plugins))
    try:

        def logged() -> bool:
            return any("orphan uploads deleted" in r.getMessage() for r in caplog.records)

        for _ in range(250):  # the files go first, the line saying so a moment later
            if not any(root.iterdir()) and logged():
                break
            await asyncio.sleep(0.02)
        assert not any(root.iterdir())
        assert logged()
    finally:
        await client.close()
