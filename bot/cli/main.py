"""`chancenter` (also `python -m bot`): serve the hub and administer it.

Builds the parser from plain declarations and imports a command's machinery only when
it runs, so `--help` answers at once. Standard output is the command's answer; log
lines go to standard error, and for admin commands only with `--verbose`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.args import CHANNEL_FLAGS, YES_NO
from bot.cli.commands import COMMANDS
from bot.cli.output import common_flags
from bot.errors import ChanCenterError, ConfigError

if TYPE_CHECKING:
    from bot.settings import Settings

# commands that create the database when there is none; the others refuse to
CREATES_DATABASE = {"serve", "init", "db"}
# what `channels set --clear` puts back to its default (`ChannelSettings`' fields)
CHANNEL_SETTINGS = ["per-second", "groups"]
# the exit status of a program stopped by SIGPIPE, as `cat` or `git log` in `... | head`
BROKEN_PIPE = 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chancenter",
        description="ChanCenter: one hub for Telegram, Messenger, WhatsApp and web chat. "
        "Settings come from CHANCENTER_* environment variables (see the README). "
        "Every command has --help; list, show and add commands take --json.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print log lines (to standard error) for admin commands",
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

    worker = commands.add_parser(
        "worker",
        help="consume the shared work queue (scale-out mode)",
        description="Consume the shared work queue on Redis: bots, flows, replies, the Slack "
        "desk, reminders. Needs CHANCENTER_REDIS_URL (and a shared database, PostgreSQL); "
        "without Redis, `serve` does the work in-process. Stops cleanly on SIGTERM.",
    )
    for service in (serve, worker):
        common_flags(service, json_output=False)
    queue = commands.add_parser(
        "queue", help="the work queue", description="The work queue's state."
    )
    queue_sub = queue.add_subparsers(dest="queue_command", required=True, metavar="COMMAND")
    dead = queue_sub.add_parser(
        "dead-letters",
        help="list work items set aside after repeated failures",
        description="Work items that failed on every attempt, with their last error. "
        "`--retry` puts them back in the queue.",
    )
    dead.add_argument("--retry", action="store_true", help="queue them again")
    common_flags(dead)

    db = commands.add_parser("db", help="database schema", description="Database schema.")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade = db_commands.add_parser(
        "upgrade",
        help="apply migrations up to the newest",
        description="Apply Alembic migrations to CHANCENTER_DATABASE_URL.",
    )
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    common_flags(upgrade, json_output=False)

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
    common_flags(init)
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
    common_flags(link)
    password = users_sub.add_parser(
        "set-password",
        help="set a user's password for the dashboard (/app/login)",
        description="Set a user's password for the dashboard at /app/login: asked twice, "
        "never echoed; at least 10 characters. Stored as an argon2 hash.",
    )
    password.add_argument("email", help="the user's email")
    password.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (one line), for scripts",
    )
    common_flags(password)
    sign_out = users_sub.add_parser(
        "sign-out",
        help="end every dashboard session of a user (a lost laptop)",
        description="End every dashboard session of the user, on every device: they sign "
        "in again with their password. To refuse the password too, set a new one.",
    )
    sign_out.add_argument("email", help="the user's email")
    common_flags(sign_out)

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
        common_flags(command, json_output=False)
    add_commands(commands)
    return parser


def _channel_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    channels = commands.add_parser(
        "channels",
        help="connect, list, change and remove messaging channels",
        description="Connect, list, change and remove messaging channels (the same as "
        "/api/v1/channels).",
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
    sub.add_parser(
        "list",
        help="list the space's channels, with their health",
        description="List the space's channels: id, kind, name, settings, when the last "
        "message came in and the last send error.",
    )
    change = sub.add_parser(
        "set",
        help="rename a channel or change its settings",
        description="Rename a channel or change its settings; the hub uses them at once. "
        "Example: chancenter channels set telegram-1a2b3c --per-second 50 --groups true",
    )
    change.add_argument("channel_id", help="the id `channels list` shows")
    change.add_argument("--name", help="the channel's new name")
    change.add_argument(
        "--per-second",
        type=float,
        metavar="N",
        help="messages a second the hub sends at most (default: the platform's limit)",
    )
    change.add_argument(
        "--groups", **YES_NO, help="telegram: take in messages from groups the bot is in"
    )
    change.add_argument(
        "--clear",
        action="append",
        choices=CHANNEL_SETTINGS,
        metavar="SETTING",
        help=f"put a setting back to its default (repeatable): {', '.join(CHANNEL_SETTINGS)}",
    )
    remove = sub.add_parser("remove", help="remove a channel", description="Remove a channel.")
    remove.add_argument("channel_id", help="the id `channels list` shows")
    for command in sub.choices.values():
        command.add_argument("--space", type=int, help="space id (default: the default space)")
        common_flags(command, json_output=command is not remove)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for group, (text, calls) in COMMANDS.items():
        parser = commands.choices.get(group) or commands.add_parser(
            group, help=text, description=text[0].upper() + text[1:] + "."
        )
        sub = _subcommands(parser, group)
        for name, call in calls.items():
            command = sub.add_parser(
                name, help=call.help, description=f"{call.help[0].upper()}{call.help[1:]}."
            )
            for flag, options in call.args:
                command.add_argument(flag, **options)
            if call.csv:
                command.add_argument("--csv", action="store_true", help="CSV to standard output")
            if call.watch:
                command.add_argument(
                    "--watch", action="store_true", help="a progress bar, polled every second"
                )
            command.add_argument("--space", type=int, help="space id (default: the default space)")
            common_flags(command)
            command.set_defaults(call=call)


def _subcommands(
    parser: argparse.ArgumentParser, group: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=f"{group}_command", required=True, metavar="COMMAND")


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; `... | head` ends quietly, as `cat` or `git log` do."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
    except BrokenPipeError:
        # what is still buffered goes nowhere, without a second error at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        from bot.logs import setup_logging
        from bot.settings import load_settings

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
        setup_logging(_log_level(settings, args))
        if args.command == "worker" and settings.redis_url is None:
            raise ConfigError(
                "`chancenter worker` consumes the shared Redis queue: set "
                "CHANCENTER_REDIS_URL. Without Redis, `chancenter serve` does the work "
                "in-process."
            )
        if args.command not in CREATES_DATABASE:
            _require_database(settings)
        return _run(settings, args)
    except ChanCenterError as exc:
        print(f"chancenter: {exc}", file=sys.stderr)
        return 2


def _run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from bot.cli import hub as cli_hub

    if args.command == "serve":
        return cli_hub.serve(settings)
    if args.command == "worker":
        return asyncio.run(cli_hub.worker(settings.model_copy(update={"work": True})))
    if args.command == "db":
        from bot.storage.migrate import upgrade

        upgrade(settings.database_url, args.revision)
        print(f"database is at revision {args.revision}")
        return 0
    if getattr(args, "call", None) is not None:
        from bot.cli import call as cli_call

        try:
            return asyncio.run(cli_call.run(settings, args))
        except KeyboardInterrupt:  # Ctrl+C is how a `--watch` ends early: no traceback
            return 130
    run = {
        "queue": cli_hub.dead_letters,
        "init": cli_hub.init,
        "channels": cli_hub.channels_command,
        "users": cli_hub.users_command,
        "contacts": cli_hub.contacts,
    }[args.command]
    return asyncio.run(run(settings, args))


def _log_level(settings: Settings, args: argparse.Namespace) -> str:
    """Services log at CHANCENTER_LOG_LEVEL; an admin command only says what went wrong,
    unless asked for more with `--verbose`."""
    if args.command in ("serve", "worker"):
        return settings.log_level
    if not getattr(args, "verbose", False):
        return "ERROR"
    return "DEBUG" if settings.log_level.upper() == "DEBUG" else "INFO"


def _require_database(settings: Settings) -> None:
    """Refuse to work on a SQLite file that is not there: creating an empty one would
    make the user's data look gone (a command run from another folder, a typo)."""
    if not settings.is_sqlite:
        return
    name = settings.database_url.split(":///", 1)[-1].split("?", 1)[0]
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name).resolve()
    if not path.exists():
        raise ConfigError(
            f"no database at {path} (CHANCENTER_DATABASE_URL={settings.database_url}).\n"
            "  Point CHANCENTER_DATABASE_URL at yours, e.g. "
            "sqlite+aiosqlite:////srv/chancenter/chancenter.db,\n"
            "  or run from its folder; `chancenter init` (or `serve`) creates a new one here."
        )
