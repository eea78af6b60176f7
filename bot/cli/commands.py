"""`chancenter orgs|spaces|users|teams|fields|tags|views|shortcuts|automations|tokens ...`.

Each command is one REST call, made in-process over a private Unix socket as the
organization's own admin (`bot.cli.call`): the CLI obeys exactly the rules, validation
and errors of the API, with no second implementation to drift from it. This module only
declares the commands, so `--help` imports nothing heavy.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from bot.cli.args import (
    CLEARABLE,
    ID,
    ORG_ROLES,
    SPACE_ROLES,
    USER,
    YES_NO,
    Arg,
    _json,
    _json_file,
)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # `{name}` segments come from the positional argument of that name
    help: str
    args: tuple[Arg, ...] = ()
    query: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # the argument that is the whole request body
    people: str = "/users"  # where an email given for a USER resolves to an id


def _definition_file(path: str) -> object:
    """A YAML or JSON definition read as the API reads one: `on:` is a key, not `true`."""
    from bot.errors import InvalidPayload
    from bot.pipeline.untrusted import load_yaml, plain

    try:
        with open(path, encoding="utf-8") as file:
            return plain(load_yaml(file.read(), path))
    except (OSError, UnicodeDecodeError, InvalidPayload) as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc}") from None


AUTOMATION, ONE = "/automations/{automation_id}", (("automation_id", ID),)
HIDDEN = {"action": "store_const", "help": argparse.SUPPRESS}  # a flag always set, unlisted
ON: Arg = ("--enabled", {**HIDDEN, "const": True, "default": True})  # what `enable` sends
OFF: Arg = ("--enabled", {**HIDDEN, "const": False, "default": False})


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
                (("user_id", USER), ("role", ORG_ROLES)),
                people="/organization",
            ),
            "remove-member": Call(
                "DELETE",
                "/organization/members/{user_id}",
                "remove someone from the organization and its spaces",
                (("user_id", USER),),
                people="/organization",
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
                "rename the space, set (or --clear) its time zone, business hours, away "
                "and handover replies",
                (
                    ("--name", {}),
                    ("--timezone", {"help": "e.g. Europe/Lisbon"}),
                    (
                        "--business-hours",
                        {
                            "type": _json,
                            "help": 'JSON, e.g. \'{"days": {"mon": ["09:00", "18:00"]}, '
                            '"holidays": ["2026-12-25"]}\'',
                        },
                    ),
                    ("--away-text", {"help": "sent outside hours or when nobody is online"}),
                    ("--away-every-minutes", {"type": int, "help": "at most one away reply per"}),
                    ("--handover-text", {"help": "said when a person takes over"}),
                    (
                        "--handover-keywords",
                        {"type": _json, "help": 'JSON, e.g. \'{"en": ["agent", "human"]}\''},
                    ),
                    ("--away-flow", {"help": "a survey run instead of the away text"}),
                    ("--csat-survey", {"help": "a survey sent when a conversation closes"}),
                    (
                        "--csat-bot-conversations",
                        {**YES_NO, "help": "the survey also after bot-only conversations"},
                    ),
                    ("--release-on-close", {**YES_NO, "help": "a close unassigns the contact"}),
                    (
                        "--assign-outside-hours",
                        {**YES_NO, "help": "assign handovers outside business hours too"},
                    ),
                    (
                        "--clear",
                        {
                            "action": "append",
                            "choices": CLEARABLE,
                            "metavar": "SETTING",
                            "help": f"remove a setting (repeatable): {', '.join(CLEARABLE)}",
                        },
                    ),
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
                    ("user_id", USER),
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
                (("team_id", ID), ("user_id", USER)),
            ),
            "remove-member": Call(
                "DELETE",
                "/teams/{team_id}/members/{user_id}",
                "take a user out of a team",
                (("team_id", ID), ("user_id", USER)),
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
                (("name", {}), ("filter", {"type": _json, "help": "a JSON filter group"})),
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
                (("view_id", ID), ("--name", {}), ("--filter", {"type": _json})),
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
                "answers per contact, counts and completion rate (--csv for a spreadsheet)",
                (("survey_id", ID),),
            ),
        },
    ),
    "automations": (
        "automations: a trigger, conditions and actions",
        {
            "list": Call("GET", "/automations", "list the automations and their state"),
            "add": Call(
                "POST",
                "/automations",
                "save an automation written in YAML or JSON",
                (("file", {"type": _definition_file, "help": "the automation (.yml or .json)"}),),
                body="file",
            ),
            "show": Call("GET", AUTOMATION, "show an automation, and why it is off if it is", ONE),
            "enable": Call("PATCH", AUTOMATION, "switch an automation on", (*ONE, ON)),
            "disable": Call("PATCH", AUTOMATION, "switch an automation off", (*ONE, OFF)),
            "runs": Call("GET", f"{AUTOMATION}/runs", "latest runs and what each did", ONE),
            "remove": Call("DELETE", AUTOMATION, "remove an automation and its runs", ONE),
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
                    (
                        "--user",
                        {
                            **USER,
                            "dest": "user_id",
                            "help": "the person the token acts as (an email or an id)",
                        },
                    ),
                ),
            ),
            "revoke": Call("DELETE", "/tokens/{token_id}", "revoke a token", (("token_id", ID),)),
        },
    ),
}
