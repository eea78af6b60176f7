"""The commands that run the hub's own components: serve, worker, init, queue, channels,
users link, contacts. Imported only when one of them runs, so `--help` stays instant."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

from bot.app import create_app
from bot.cli.args import CHANNEL_FLAGS
from bot.cli.output import emit
from bot.clock import iso
from bot.errors import ConfigError
from bot.keys import DB, DEFAULT_SPACE
from bot.settings import Settings
from bot.storage.tables import channels, spaces, users, views, work_items
from bot.workspace import channel_admin


@asynccontextmanager
async def hub(settings: Settings, socket: Path | None = None) -> AsyncIterator[web.Application]:
    """The hub's components, started without working (for admin commands); listening
    only on `socket`, when given."""
    runner = web.AppRunner(create_app(settings.model_copy(update={"work": False})))
    await runner.setup()
    try:
        if socket is not None:
            await web.UnixSite(runner, str(socket)).start()
        yield runner.app
    finally:
        await runner.cleanup()


def serve(settings: Settings) -> int:
    from bot.api.http import server_options

    if settings.agent_path is not None and not settings.agent_path.is_dir():
        raise ConfigError(f"--agent {settings.agent_path}: no such folder")
    url = f"http://{settings.host}:{settings.port}"
    app = create_app(settings)
    app.on_startup.append(_started)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=lambda _: print(f"ChanCenter is listening on {url} (Ctrl+C to stop)", flush=True),
        access_log=None,
        **server_options(settings),
    )
    return 0


async def _started(_: web.Application) -> None:
    """What start-up made lives as long as the process: kept out of the garbage collector's
    full passes, which would walk it all again and again (each pause took 200 ms, and
    delayed bot replies as long, under a broadcast's load)."""
    gc.collect()
    gc.freeze()


async def worker(settings: Settings) -> int:
    """The hub's components without a web server: consume, send, relay, remind."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await _started(runner.app)
    print("ChanCenter worker is running (Ctrl+C to stop)", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


async def init(settings: Settings, args: argparse.Namespace) -> int:
    from bot.api.auth import create_token
    from bot.storage.db import Database
    from bot.storage.migrate import upgrade
    from bot.workspace.bootstrap import SpaceCreated, add_admin, create_space, ensure_default_space

    if settings.is_sqlite:
        await asyncio.to_thread(upgrade, settings.database_url)
    db = Database(settings.database_url)
    try:
        if args.org is None:
            space_id = await ensure_default_space(db, webchat=True)
        async with db.write() as conn:
            if args.org is None:
                space = (await conn.execute(sa.select(spaces).where(spaces.c.id == space_id))).one()
                channel_id = (
                    await conn.execute(
                        sa.select(channels.c.id)
                        .where(channels.c.space_id == space_id)
                        .where(channels.c.kind == "webchat")
                    )
                ).scalar()
                created = SpaceCreated(space.organization_id, space_id, channel_id)
            else:
                created = await create_space(
                    conn, args.org, args.space, default=False, webchat=True
                )
            user_id = await add_admin(conn, created, args.admin_name, args.admin_email)
            token = await create_token(conn, created.space_id, user_id, "init", "admin")
    finally:
        await db.close()
    if args.json:
        emit(
            {
                "organization_id": created.organization_id,
                "space_id": created.space_id,
                "webchat_channel_id": created.webchat_channel_id,
                "user_id": user_id,
                "email": args.admin_email,
                "token": token,
            },
            as_json=True,
        )
        return 0
    print(f"organization: {created.organization_id}")
    print(f"space:        {created.space_id}")
    print(f"web chat:     {created.webchat_channel_id}")
    print(f"admin user:   {user_id} <{args.admin_email}>")
    print(f"API token:    {token}")
    print("Keep the token: it is shown once. Use it as 'Authorization: Bearer <token>'.")
    return 0


async def dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    async with hub(settings) as app:
        async with app[DB].read() as conn:
            rows = (
                await conn.execute(
                    sa.select(work_items)
                    .where(work_items.c.status == "dead")
                    .order_by(work_items.c.id)
                )
            ).all()
        if args.retry and rows:
            async with app[DB].write() as conn:
                await conn.execute(
                    work_items.update()
                    .where(work_items.c.status == "dead")
                    .values(status="pending", attempts=0)
                )
    items = [
        {
            "id": r.id,
            "conversation_id": r.conversation_id,
            "attempts": r.attempts,
            "last_error": r.last_error,
        }
        for r in rows
    ]
    if args.json:
        emit({"items": items, **({"queued_again": len(rows)} if args.retry else {})}, True)
        return 0
    for r in rows:
        print(f"{r.id}\tconversation {r.conversation_id}\t{r.attempts} attempts\t{r.last_error}")
    if args.retry and rows:
        print(f"{len(rows)} queued again", file=sys.stderr)
    elif not rows:
        print("no dead letters", file=sys.stderr)
    return 0


async def channels_command(settings: Settings, args: argparse.Namespace) -> int:
    """`channels add|list|set|remove`, in process, through `bot.workspace.channel_admin`
    (the implementation the REST API and the chat commands share)."""
    async with hub(settings) as app:
        space_id = args.space or app[DEFAULT_SPACE]
        if args.channels_command == "add":
            given = {
                flag[2:].replace("-", "_"): value
                for flag in CHANNEL_FLAGS
                if (value := getattr(args, flag[2:].replace("-", "_"))) is not None
            }
            info = await channel_admin.add_channel(app, space_id, args.kind, given)
            if args.json:
                emit(info.as_json(), True)
                return 0
            print(f"connected {info.kind} channel {info.name}: {info.id}")
            if info.kind == "botframework":
                print(f"messaging endpoint (paste it into the Azure Bot): {info.webhook_url}")
            elif info.webhook_url is not None:  # web chat takes no webhooks
                print(f"webhook: {info.webhook_url}")
        elif args.channels_command == "list":
            found = await channel_admin.list_channels(app, space_id)
            if args.json:
                emit({"items": [info.as_json() for info in found]}, True)
            else:
                for info in found:
                    print("\t".join([info.id, info.kind, info.name, *_health_cells(info)]))
        elif args.channels_command == "set":
            change: dict[str, object] = {
                key: value
                for key, value in (("per_second", args.per_second), ("groups", args.groups))
                if value is not None
            }
            change |= {name.replace("-", "_"): None for name in args.clear or ()}
            if args.name is None and not change:
                raise ConfigError("say what to change: --name, --per-second, --groups or --clear")
            info = await channel_admin.change_channel(
                app, space_id, args.channel_id, args.name, change
            )
            emit(info.as_json(), args.json)
        else:
            await channel_admin.remove_channel(app, space_id, args.channel_id)
            print(f"removed channel {args.channel_id}")
    return 0


def _health_cells(info: channel_admin.ChannelInfo) -> list[str]:
    """`channels list`'s columns after the name: settings, the last message in, the last
    send error (when there is one)."""
    cells = [" ".join(f"{k}={v}" for k, v in info.settings.items()) or "-"]
    received = info.health.last_received_at
    cells.append(f"last in {iso(received)}" if received else "nothing in yet")
    failed = info.health.last_send_error
    if failed is not None:
        cells.append(f"last send error {iso(failed.at)}: {failed.error}")
    return cells


async def users_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.users_command == "set-password":
        return await set_password(settings, args)
    if args.users_command == "sign-out":
        return await sign_out(settings, args)
    return await link(settings, args)


async def sign_out(settings: Settings, args: argparse.Namespace) -> int:
    from bot.workspace.passwords import sign_out as end

    async with hub(settings) as app, app[DB].write() as conn:
        ended = await end(conn, args.email)
    if args.json:
        emit({"email": args.email, "sessions_ended": ended}, True)
    else:
        print(f"{ended} dashboard session{'s' * (ended != 1)} of {args.email} ended")
    return 0


async def set_password(settings: Settings, args: argparse.Namespace) -> int:
    from bot.workspace.passwords import set_password as store

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            raise ConfigError("the two passwords differ: nothing changed")
    async with hub(settings) as app, app[DB].write() as conn:
        user_id = await store(conn, args.email, password)
    if args.json:
        emit({"user_id": user_id, "email": args.email}, True)
    else:
        print(f"password set for {args.email}: sign in at /app/login")
    return 0


async def link(settings: Settings, args: argparse.Namespace) -> int:
    from bot.workspace.links import new_code

    who = args.user
    async with hub(settings) as app, app[DB].write() as conn:
        match = users.c.id == int(who) if who.isdigit() else users.c.email == who
        user_id = (await conn.execute(sa.select(users.c.id).where(match))).scalar()
        if user_id is None:
            if who.isdigit():
                raise ConfigError(f"no user {who}: `chancenter users list` shows who there is")
            raise ConfigError(
                f"no user {who!r}: `chancenter users add {who} --name NAME` adds them"
            )
        code = await new_code(conn, user_id)
    if args.json:
        emit({"user_id": user_id, "code": code, "valid_minutes": 15}, True)
        return 0
    print(
        f"Send this from your own Telegram, Messenger or WhatsApp chat with the bot "
        f"(valid 15 minutes):\n\n    /link {code}"
    )
    return 0


async def contacts(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bot.workspace.csv_io import export_csv, import_csv
    from bot.workspace.filters import Group

    async with hub(settings) as app:
        space_id = args.space or app[DEFAULT_SPACE]
        if args.contacts_command == "import":
            if not args.file.is_file():
                raise ConfigError(f"{args.file}: no such file")
            with args.file.open(newline="", encoding="utf-8-sig") as count_lines:
                total = max(sum(1 for _ in count_lines) - 1, 0)
            with (
                args.file.open(newline="", encoding="utf-8-sig") as source,
                # a progress bar on a terminal only (disable=None): no noise in a log
                tqdm(
                    total=total, unit="row", desc="importing", file=sys.stderr, disable=None
                ) as bar,
            ):
                report = await import_csv(app[DB], space_id, source, bar.update)
            for error in report.errors:
                print(error, file=sys.stderr)
            print(
                f"{report.created} created, {report.updated} updated, "
                f"{len(report.errors)} rows refused"
            )
            return 1 if report.errors else 0
        group = None
        if args.view is not None:
            async with app[DB].read() as conn:
                saved = (
                    await conn.execute(
                        sa.select(views.c.filter)
                        .where(views.c.id == args.view)
                        .where(views.c.space_id == space_id)
                    )
                ).scalar()
            if saved is None:
                raise ConfigError(f"no view {args.view} in space {space_id}")
            group = Group.model_validate(saved)
        async for line in export_csv(app[DB], space_id, group):
            sys.stdout.write(line)
    return 0
