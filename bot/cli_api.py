"""`chancenter orgs|spaces|users|teams|fields|tags|views|shortcuts|tokens ...`.

Each command is one REST call, made in-process over a private Unix socket as the
organization's own admin: the CLI obeys exactly the rules, validation and errors of
the API, with no second implementation to drift from it.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.errors import ChanCenterError
from bot.settings import Settings

Arg = tuple[str, dict[str, Any]]
ID = {"type": int}
ORG_ROLES = {"choices": ["admin", "billing_admin", "member"]}
SPACE_ROLES = {"choices": ["manager", "agent"]}


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # `{name}` segments come from the positional argument of that name
    help: str
    args: tuple[Arg, ...] = ()
    query: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # the argument that is the whole request body


def _json_file(path: str) -> Any:
    """A JSON (or YAML, its superset in practice) file's content."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc}") from None


COMMANDS: dict[str, tuple[str, dict[str, Call]]] = {
    "orgs": (
        "your organization and its members (`init --org` creates one)",
        {
            "show": Call("GET", "/organization", "show the organization and its members"),
            "add-member": Call(
                "POST",
                "/organization/members",
                "add someone (a person with an account in another organization is invited "
                "and accepts with the printed code)",
                (("email", {}), ("--name", {"required": True}), ("--role", ORG_ROLES)),
            ),
            "set-role": Call(
                "PATCH",
                "/organization/members/{user_id}",
                "change a member's role",
                (("user_id", ID), ("role", ORG_ROLES)),
            ),
            "remove-member": Call(
                "DELETE",
                "/organization/members/{user_id}",
                "remove someone from the organization and its spaces",
                (("user_id", ID),),
            ),
        },
    ),
    "spaces": (
        "the organization's spaces and the current space's settings",
        {
            "list": Call("GET", "/spaces", "list the organization's spaces"),
            "create": Call(
                "POST", "/spaces", "create a space (prints an admin token)", (("name", {}),)
            ),
            "show": Call("GET", "/space", "show the space's settings"),
            "set": Call(
                "PATCH",
                "/space",
                "rename the space, set its time zone, business hours and away reply",
                (
                    ("--name", {}),
                    ("--timezone", {"help": "e.g. Europe/Lisbon"}),
                    (
                        "--business-hours",
                        {
                            "type": json.loads,
                            "help": 'JSON, e.g. \'{"days": {"mon": ["09:00", "18:00"]}, '
                            '"holidays": ["2026-12-25"]}\'',
                        },
                    ),
                    ("--away-text", {"help": "sent outside hours or when nobody is online"}),
                    ("--away-every-minutes", {"type": int, "help": "at most one away reply per"}),
                ),
            ),
        },
    ),
    "users": (
        "the space's users",
        {
            "list": Call("GET", "/users", "list the space's users"),
            "add": Call(
                "POST",
                "/users",
                "add a user to the space (someone with an account in another organization is "
                "invited: pass them the printed code)",
                (
                    ("email", {}),
                    ("--name", {"required": True}),
                    ("--role", SPACE_ROLES),
                    ("--slack-user-id", {}),
                ),
            ),
            "set": Call(
                "PATCH",
                "/users/{user_id}",
                "change a user's role or capacity here; availability or Slack id only for "
                "people of this organization alone",
                (
                    ("user_id", ID),
                    ("--availability", {"choices": ["online", "away", "offline"]}),
                    ("--role", SPACE_ROLES),
                    ("--slack-user-id", {}),
                    ("--capacity", {"type": int, "help": "most open conversations; 0: no limit"}),
                ),
            ),
        },
    ),
    "invitations": (
        "invitations of people with an account elsewhere",
        {
            "list": Call("GET", "/invitations", "list pending invitations"),
            "withdraw": Call(
                "DELETE",
                "/invitations/{invitation_id}",
                "withdraw a pending invitation",
                (("invitation_id", ID),),
            ),
        },
    ),
    "teams": (
        "teams of users",
        {
            "list": Call("GET", "/teams", "list teams and their members"),
            "create": Call(
                "POST",
                "/teams",
                "create a team",
                (("name", {}), ("--slack-channel", {"help": "the team's own Slack inbox id"})),
            ),
            "set": Call(
                "PATCH",
                "/teams/{team_id}",
                "rename a team or set its Slack inbox channel",
                (("team_id", ID), ("--name", {}), ("--slack-channel", {})),
            ),
            "delete": Call("DELETE", "/teams/{team_id}", "delete a team", (("team_id", ID),)),
            "add-member": Call(
                "POST",
                "/teams/{team_id}/members",
                "add a user to a team",
                (("team_id", ID), ("user_id", ID)),
            ),
            "remove-member": Call(
                "DELETE",
                "/teams/{team_id}/members/{user_id}",
                "take a user out of a team",
                (("team_id", ID), ("user_id", ID)),
            ),
        },
    ),
    "fields": (
        "custom fields of contacts",
        {
            "list": Call("GET", "/fields", "list the custom fields"),
            "add": Call(
                "POST",
                "/fields",
                "define a custom field",
                (
                    ("key", {"help": "lowercase letters, digits and _"}),
                    (
                        "type",
                        {
                            "choices": [
                                "text",
                                "number",
                                "date",
                                "boolean",
                                "choice",
                                "email",
                                "phone",
                                "url",
                            ]
                        },
                    ),
                    ("--label", {}),
                    ("--option", {"action": "append", "dest": "options", "help": "repeatable"}),
                ),
            ),
            "set": Call(
                "PATCH",
                "/fields/{field_id}",
                "relabel a field or change a choice field's options",
                (
                    ("field_id", ID),
                    ("--label", {}),
                    ("--option", {"action": "append", "dest": "options", "help": "repeatable"}),
                ),
            ),
            "remove": Call(
                "DELETE",
                "/fields/{field_id}",
                "delete a field and every contact's value for it",
                (("field_id", ID),),
            ),
        },
    ),
    "tags": (
        "tags on contacts",
        {
            "list": Call("GET", "/tags", "list tags and how many contacts carry each"),
            "add": Call(
                "POST",
                "/contacts/{contact_id}/tags",
                "tag a contact",
                (("contact_id", ID), ("tags", {"nargs": "+"})),
            ),
            "remove": Call(
                "DELETE",
                "/contacts/{contact_id}/tags/{name}",
                "untag a contact",
                (("contact_id", ID), ("name", {})),
            ),
            "bulk": Call(
                "POST",
                "/tags/bulk",
                "tag (or untag) every contact a saved view selects",
                (
                    ("tags", {"nargs": "+"}),
                    ("--view-id", {**ID, "required": True}),
                    ("--action", {"choices": ["add", "remove"], "default": "add"}),
                ),
            ),
        },
    ),
    "views": (
        "saved filters over contacts",
        {
            "list": Call("GET", "/views", "list the saved views"),
            "create": Call(
                "POST",
                "/views",
                "save a shared view",
                (("name", {}), ("filter", {"type": json.loads, "help": "a JSON filter group"})),
            ),
            "contacts": Call(
                "GET",
                "/views/{view_id}/contacts",
                "the newest contacts a view selects, and their count",
                (("view_id", ID),),
                {"count": "1"},
            ),
            "set": Call(
                "PATCH",
                "/views/{view_id}",
                "rename a view or change its filter",
                (("view_id", ID), ("--name", {}), ("--filter", {"type": json.loads})),
            ),
            "remove": Call("DELETE", "/views/{view_id}", "delete a view", (("view_id", ID),)),
        },
    ),
    "shortcuts": (
        "message templates for agents",
        {
            "list": Call("GET", "/shortcuts", "list the shortcuts"),
            "add": Call(
                "POST",
                "/shortcuts",
                "save a shared shortcut",
                (
                    ("name", {}),
                    ("text", {"help": "e.g. 'Hi {{contact.first_name}}'"}),
                    ("--quick-reply", {"action": "append", "dest": "quick_replies"}),
                    ("--attachment-url", {}),
                ),
            ),
            "set": Call(
                "PATCH",
                "/shortcuts/{shortcut_id}",
                "change a shortcut",
                (("shortcut_id", ID), ("--name", {}), ("--text", {})),
            ),
            "remove": Call(
                "DELETE",
                "/shortcuts/{shortcut_id}",
                "delete a shortcut",
                (("shortcut_id", ID),),
            ),
        },
    ),
    "integrations": (
        "the space's own Dialogflow agent",
        {
            "list": Call("GET", "/integrations", "list integrations and their last error"),
            "dialogflow": Call(
                "PUT",
                "/integrations/dialogflow",
                "answer the space with this Dialogflow ES agent",
                (
                    ("project", {"help": "the GCP project id of the agent"}),
                    (
                        "--credentials",
                        {"type": _json_file, "help": "the service account's JSON key file"},
                    ),
                    ("--language", {"help": "when the contact's is unknown (default: en)"}),
                    ("--environment", {"help": "a Dialogflow environment (default: draft)"}),
                ),
            ),
            "remove-dialogflow": Call(
                "DELETE", "/integrations/dialogflow", "go back to the hub's default bot"
            ),
        },
    ),
    "surveys": (
        "surveys and other conversational flows",
        {
            "add": Call(
                "POST",
                "/surveys",
                "save a survey written in YAML or JSON",
                (("file", {"type": _json_file, "help": "the survey (.yml, .yaml or .json)"}),),
                body="file",
            ),
            "list": Call("GET", "/surveys", "list the surveys"),
            "show": Call(
                "GET", "/surveys/{survey_id}", "show a survey's definition", (("survey_id", ID),)
            ),
            "remove": Call(
                "DELETE",
                "/surveys/{survey_id}",
                "remove a survey and its results",
                (("survey_id", ID),),
            ),
            "send": Call(
                "POST",
                "/surveys/{survey_id}/send",
                "start a survey for some contacts or a saved view",
                (
                    ("survey_id", ID),
                    ("--view-id", ID),
                    ("--contact-id", {**ID, "action": "append", "dest": "contact_ids"}),
                ),
            ),
            "results": Call(
                "GET",
                "/surveys/{survey_id}/results",
                "answers per contact (add --csv for a spreadsheet)",
                (("survey_id", ID),),
            ),
        },
    ),
    "tokens": (
        "API tokens of the space",
        {
            "list": Call("GET", "/tokens", "list tokens (never their secrets)"),
            "create": Call(
                "POST",
                "/tokens",
                "create a token (printed once)",
                (
                    ("name", {}),
                    ("--role", {"choices": ["billing", "agent", "manager", "admin"]}),
                ),
            ),
            "revoke": Call("DELETE", "/tokens/{token_id}", "revoke a token", (("token_id", ID),)),
        },
    ),
}


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
            if call.path.endswith("/results"):
                command.add_argument("--csv", action="store_true", help="CSV to standard output")
            command.add_argument("--space", type=int, help="space id (default: the default space)")
            command.set_defaults(call=call)


def _subcommands(
    parser: argparse.ArgumentParser, group: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=f"{group}_command", required=True, metavar="COMMAND")


def _request(call: Call, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The call's URL (path arguments filled in) and its other arguments."""
    names = [options.get("dest", flag.lstrip("-").replace("-", "_")) for flag, options in call.args]
    values = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    path = re.sub(r"{(\w+)}", lambda m: str(values.pop(m.group(1))), call.path)
    return "/api/v1" + path, values


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.auth import LOCAL_PRINCIPALS, Principal, hash_token
    from bot.cli import _hub
    from bot.keys import DEFAULT_SPACE

    url, values = _request(args.call, args)
    if getattr(args, "csv", False):
        url += ".csv"
    payload: Any = values.pop(args.call.body) if args.call.body else values
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as private:
        sock = Path(private) / "hub.sock"
        async with _hub(settings, sock) as app:
            space_id = args.space or app[DEFAULT_SPACE]
            app[LOCAL_PRINCIPALS][hash_token(token)] = Principal(0, space_id, None, "admin")
            get = args.call.method == "GET"
            async with (
                aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as http,
                http.request(
                    args.call.method,
                    f"http://hub{url}",
                    params={**args.call.query, **values} if get else None,
                    json=None if get or args.call.method == "DELETE" else payload,
                    headers={"Authorization": f"Bearer {token}"},
                ) as response,
            ):
                if response.content_type == "text/csv":
                    sys.stdout.write(await response.text())
                    return 0
                body = await response.json() if response.content_type.endswith("json") else None
    if response.status >= 400:
        raise ChanCenterError(body["detail"] if body else f"HTTP {response.status}")
    _print(body)
    return 0


def _print(body: Any) -> None:
    """Lists as tab-separated rows under a header; anything else as JSON."""
    if body is None:
        print("done")
    elif isinstance(body.get("items"), list) and body["items"]:
        items = body["items"]
        columns = list(items[0])
        print("\t".join(columns))
        for item in items:
            print("\t".join(_cell(item.get(c)) for c in columns))
        if "count" in body:
            print(f"{body['count']} in all", file=sys.stderr)
    elif isinstance(body.get("items"), list):
        print("(none)" + (f", {body['count']} in all" if "count" in body else ""), file=sys.stderr)
    else:
        print(json.dumps(body, indent=2, ensure_ascii=False))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
