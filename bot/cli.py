"""`chancenter` (also `python -m bot`): serve the hub and administer it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

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
        description="Run the hub: webhooks, web chat, REST API and, "
        "unless --no-work, the in-process worker and sender.",
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
    serve.add_argument(
        "--no-work",
        action="store_true",
        help="only ingest and serve sockets; leave the queue to other processes",
    )

    commands.add_parser(
        "worker",
        help="consume the shared work queue (scale-out mode)",
        description="Consume the shared work queue. Needs CHANCENTER_REDIS_URL; "
        "without it, `serve` does the work itself.",
    )

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
    return parser


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
            if args.no_work:
                overrides["work"] = False
        settings = load_settings(**overrides)
        setup_logging(settings.log_level)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "worker":
            raise ConfigError(
                "`chancenter worker` consumes the shared Redis queue: set CHANCENTER_REDIS_URL. "
                "Without Redis, `chancenter serve` does the work in-process."
            )
        if args.command == "db":
            from bot.storage.migrate import upgrade

            upgrade(settings.database_url, args.revision)
            print(f"database is at revision {args.revision}")
            return 0
        if args.command == "init":
            return asyncio.run(_init(settings, args))
    except ChanCenterError as exc:
        print(f"chancenter: {exc}", file=sys.stderr)
        return 2
    return 1


def _serve(settings: Settings) -> int:
    from aiohttp import web

    from bot.app import create_app

    if settings.agent_path is not None and not settings.agent_path.is_dir():
        raise ConfigError(f"--agent {settings.agent_path}: no such folder")
    url = f"http://{settings.host}:{settings.port}"
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=lambda _: print(f"ChanCenter is listening on {url} (Ctrl+C to stop)", flush=True),
        access_log=None,
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
