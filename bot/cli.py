"""`chancenter` (also `python -m bot`): serve the hub and administer it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from bot.cli_api import add_commands
from bot.errors import ChanCenterError, ConfigError
from bot.logs import setup_logging
from bot.settings import Settings, load_settings

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chancenter",
        description="ChanCenter: one hub for Telegram, Messenger, WhatsApp and web chat. "
        "Settings come from CHANCENTER_* environment variables (see the README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the hub (webhooks, web chat, API, worker)",
        description="Run the hub: webhooks, web chat, REST API and, without "
        "CHANCENTER_REDIS_URL (or with --work), the in-process worker and sender.",
    )
    serve.add_argument("--host", help="interface to listen on (CHANCENTER_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (CHANCENTER_PORT)")
    serve.add_argument(
        "--agent",
        type=Path,
        metavar="PATH",
        help="Dialogflow ES agent export folder for the built-in bot "
        "(default: the bundled sample agent)",
    )
    work = serve.add_mutually_exclusive_group()
    work.add_argument(
        "--no-work",
        dest="work",
        action="store_false",
        default=None,
        help="only ingest and serve sockets; leave the queue to other processes",
    )
    work.add_argument(
        "--work",
        dest="work",
        action="store_true",
        default=None,
        help="with CHANCENTER_REDIS_URL, also do the work (the default without Redis)",
    )

    commands.add_parser(
        "worker",
        help="consume the shared work queue (scale-out mode)",
        description="Consume the shared work queue on Redis: bots, flows, replies, the Slack "
        "desk, reminders. Needs CHANCENTER_REDIS_URL (and a shared database, PostgreSQL); "
        "without Redis, `serve` does the work in-process. Stops cleanly on SIGTERM.",
    )
    queue = commands.add_parser(
        "queue", help="the work queue", description="The work queue's state."
    )
    queue_sub = queue.add_subparsers(dest="queue_command", required=True, metavar="COMMAND")
    queue_sub.add_parser(
        "dead-letters",
        help="list work items set aside after repeated failures",
        description="Work items that failed on every attempt, with their last error. "
        "`--retry` puts them back in the queue.",
    ).add_argument("--retry", action="store_true", help="queue them again")

    db = commands.add_parser("db", help="database schema", description="Database schema.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser(
        "upgrade",
        help="apply migrations up to the newest",
        description="Apply Alembic migrations to CHANCENTER_DATABASE_URL.",
    )
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")

    init = commands.add_parser(
        "init",
        help="create an organization, space, admin user and API token",
        description="Create an organization, a space with a web-chat channel, and an admin "
        "user, then print an API token for that space. Without --org, the admin joins the "
        "default space (created if missing).",
    )
    init.add_argument("--org", help="name of a new organization (and its first space)")
    init.add_argument("--space", default="Main", help="name of the new space (with --org)")
    init.add_argument("--admin-email", default="admin@localhost", help="the admin's email")
    init.add_argument("--admin-name", default="Admin", help="the admin's name")
    _channel_commands(commands)
    users = commands.add_parser("users", help="users of the hub", description="Users of the hub.")
    users_sub = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    link = users_sub.add_parser(
        "link",
        help="print a one-time code that links a user's own chat account",
        description="Print a one-time code (valid 15 minutes). The user sends `/link CODE` to "
        "any connected channel from their own Telegram, Messenger or WhatsApp; from then on "
        "`/channel ...` admin commands sent from there are obeyed.",
    )
    link.add_argument("--user", required=True, help="the user's email or id")

    contacts = commands.add_parser(
        "contacts",
        help="import and export contacts as CSV",
        description="Import and export contacts as CSV.",
    )
    contacts_sub = contacts.add_subparsers(
        dest="contacts_command", required=True, metavar="COMMAND"
    )
    imp = contacts_sub.add_parser(
        "import",
        help="import contacts from a CSV file",
        description="Columns: name, phone, email, language, tags (comma-separated) and custom "
        "field keys. A contact with the same email or phone is updated. Bad rows are reported "
        "with their line numbers; the good ones are kept.",
    )
    imp.add_argument("file", type=Path, help="the CSV file (UTF-8, with a header row)")
    exp = contacts_sub.add_parser(
        "export",
        help="write contacts as CSV to standard output",
        description="Write contacts as CSV to standard output.",
    )
    exp.add_argument("--view", type=int, help="only the contacts this saved view selects")
    for command in (imp, exp):
        command.add_argument("--space", type=int, help="space id (default: the default space)")
    add_commands(commands)
    return parser


CHANNEL_FLAGS = {
    "--token": "telegram: the bot token from @BotFather",
    "--page-id": "messenger: the Facebook page id",
    "--page-token": "messenger: the page access token",
    "--phone-number-id": "whatsapp: the phone number id",
    "--access-token": "whatsapp: a system-user access token",
    "--app-secret": "messenger/whatsapp: the Meta app secret (signs webhooks)",
    "--verify-token": "messenger/whatsapp: any string; Meta echoes it when checking the URL",
}


def _channel_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    channels = commands.add_parser(
        "channels",
        help="connect, list and remove messaging channels",
        description="Connect, list and remove messaging channels.",
    )
    sub = channels.add_subparsers(dest="channels_command", required=True, metavar="COMMAND")
    add = sub.add_parser(
        "add",
        help="connect a channel",
        description="Check the credentials at the platform, store them encrypted and register "
        "the hub's webhook (CHANCENTER_PUBLIC_URL/webhooks/<id>). Example: "
        "chancenter channels add telegram --token 123456:ABC-DEF",
    )
    add.add_argument("kind", help="telegram, messenger, whatsapp, ...")
    for flag, text in CHANNEL_FLAGS.items():
        add.add_argument(flag, help=text)
    for name, text in (("list", "list the space's channels"), ("remove", "remove a channel")):
        command = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        if name == "remove":
            command.add_argument("channel_id", help="the id `channels list` shows")
    for command in (add, *sub.choices.values()):
        if not any(a.dest == "space" for a in command._actions):
            command.add_argument("--space", type=int, help="space id (default: the default space)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides: dict[str, object] = {}
        if args.command == "serve":
            overrides = {
                k: v
                for k, v in (("host", args.host), ("port", args.port), ("agent_path", args.agent))
                if v is not None
            }
            if args.work is not None:
                overrides["work"] = args.work
        settings = load_settings(**overrides)
        setup_logging(settings.log_level)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "worker":
            if settings.redis_url is None:
                raise ConfigError(
                    "`chancenter worker` consumes the shared Redis queue: set "
                    "CHANCENTER_REDIS_URL. Without Redis, `chancenter serve` does the work "
                    "in-process."
                )
            return asyncio.run(_worker(settings.model_copy(update={"work": True})))
        if args.command == "queue":
            return asyncio.run(_dead_letters(settings, args.retry))
        if args.command == "db":
            from bot.storage.migrate import upgrade

            upgrade(settings.database_url, args.revision)
            print(f"database is at revision {args.revision}")
            return 0
        if args.command == "init":
            return asyncio.run(_init(settings, args))
        if args.command == "channels":
            return asyncio.run(_channels(settings, args))
        if getattr(args, "call", None) is not None:
            from bot import cli_api

            return asyncio.run(cli_api.run(settings, args))
        if args.command == "users":
            return asyncio.run(_link(settings, args.user))
        if args.command == "contacts":
            return asyncio.run(_contacts(settings, args))
    except ChanCenterError as exc:
        print(f"chancenter: {exc}", file=sys.stderr)
        return 2
    return 1


def _serve(settings: Settings) -> int:
    from bot.app import create_app
    from bot.http import server_options

    if settings.agent_path is not None and not settings.agent_path.is_dir():
        raise ConfigError(f"--agent {settings.agent_path}: no such folder")
    url = f"http://{settings.host}:{settings.port}"
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=lambda _: print(f"ChanCenter is listening on {url} (Ctrl+C to stop)", flush=True),
        access_log=None,
        **server_options(settings),
    )
    return 0


async def _init(settings: Settings, args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from bot.auth import create_token
    from bot.bootstrap import SpaceCreated, add_admin, create_space, ensure_default_space
    from bot.storage.db import Database
    from bot.storage.migrate import upgrade
    from bot.storage.tables import channels, spaces

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
    print(f"organization: {created.organization_id}")
    print(f"space:        {created.space_id}")
    print(f"web chat:     {created.webchat_channel_id}")
    print(f"admin user:   {user_id} <{args.admin_email}>")
    print(f"API token:    {token}")
    print("Keep the token: it is shown once. Use it as 'Authorization: Bearer <token>'.")
    return 0


async def _worker(settings: Settings) -> int:
    """The hub's components without a web server: consume, send, relay, remind."""
    import signal

    from bot.app import create_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    print("ChanCenter worker is running (Ctrl+C to stop)", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


async def _dead_letters(settings: Settings, retry: bool) -> int:
    import sqlalchemy as sa

    from bot.keys import DB
    from bot.storage.tables import work_items

    async with _hub(settings) as app:
        async with app[DB].read() as conn:
            rows = (
                await conn.execute(
                    sa.select(work_items)
                    .where(work_items.c.status == "dead")
                    .order_by(work_items.c.id)
                )
            ).all()
        for r in rows:
            print(
                f"{r.id}\tconversation {r.conversation_id}\t{r.attempts} attempts\t{r.last_error}"
            )
        if retry and rows:
            async with app[DB].write() as conn:
                await conn.execute(
                    work_items.update()
                    .where(work_items.c.status == "dead")
                    .values(status="pending", attempts=0)
                )
            print(f"{len(rows)} queued again", file=sys.stderr)
        elif not rows:
            print("no dead letters", file=sys.stderr)
    return 0


@asynccontextmanager
async def _hub(settings: Settings, socket: Path | None = None) -> AsyncIterator[web.Application]:
    """The hub's components, started without working (for admin commands); listening
    only on `socket`, when given."""
    from bot.app import create_app

    runner = web.AppRunner(create_app(settings.model_copy(update={"work": False})))
    await runner.setup()
    try:
        if socket is not None:
            await web.UnixSite(runner, str(socket)).start()
        yield runner.app
    finally:
        await runner.cleanup()


async def _channels(settings: Settings, args: argparse.Namespace) -> int:
    from bot import channel_admin
    from bot.keys import DEFAULT_SPACE

    async with _hub(settings) as app:
        space_id = args.space or app[DEFAULT_SPACE]
        if args.channels_command == "add":
            given = {
                flag[2:].replace("-", "_"): value
                for flag in CHANNEL_FLAGS
                if (value := getattr(args, flag[2:].replace("-", "_"))) is not None
            }
            info = await channel_admin.add_channel(app, space_id, args.kind, given)
            print(f"connected {info.kind} channel {info.name}: {info.id}")
            print(f"webhook: {info.webhook_url}")
        elif args.channels_command == "list":
            for info in await channel_admin.list_channels(app, space_id):
                print(f"{info.id}\t{info.kind}\t{info.name}")
        else:
            await channel_admin.remove_channel(app, space_id, args.channel_id)
            print(f"removed channel {args.channel_id}")
    return 0


async def _link(settings: Settings, who: str) -> int:
    import sqlalchemy as sa

    from bot.keys import DB
    from bot.links import new_code
    from bot.storage.tables import users

    async with _hub(settings) as app, app[DB].write() as conn:
        match = users.c.id == int(who) if who.isdigit() else users.c.email == who
        user_id = (await conn.execute(sa.select(users.c.id).where(match))).scalar()
        if user_id is None:
            raise ConfigError(f"no user {who!r}: `chancenter init --admin-email ...` creates one")
        code = await new_code(conn, user_id)
    print(
        f"Send this from your own Telegram, Messenger or WhatsApp chat with the bot "
        f"(valid 15 minutes):\n\n    /link {code}"
    )
    return 0


async def _contacts(settings: Settings, args: argparse.Namespace) -> int:
    import sqlalchemy as sa
    from tqdm import tqdm

    from bot.csv_io import export_csv, import_csv
    from bot.filters import Group
    from bot.keys import DB, DEFAULT_SPACE
    from bot.storage.tables import views

    async with _hub(settings) as app:
        space_id = args.space or app[DEFAULT_SPACE]
        if args.contacts_command == "import":
            if not args.file.is_file():
                raise ConfigError(f"{args.file}: no such file")
            with args.file.open(newline="", encoding="utf-8-sig") as count_lines:
                total = max(sum(1 for _ in count_lines) - 1, 0)
            with (
                args.file.open(newline="", encoding="utf-8-sig") as source,
                tqdm(total=total, unit="row", desc="importing", file=sys.stderr) as bar,
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
