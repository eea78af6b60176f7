"""`chancenter orgs|spaces|users|invitations|teams|integrations|tokens ...`, and the nouns of
`bot.cli.content`, `bot.cli.broadcasts` and `bot.cli.webhooks`, gathered in `COMMANDS`.

Each command is one REST call, made in-process over a private Unix socket as the
organization's own admin (`bot.cli.call`): the CLI obeys exactly the rules, validation
and errors of the API, with no second implementation to drift from it. These modules only
declare the commands, so `--help` imports nothing heavy.
"""

from __future__ import annotations

from bot.cli.args import (
    CLEARABLE,
    ID,
    ORG_ROLES,
    SPACE_ROLES,
    USER,
    YES_NO,
    Call,
    _json,
    _json_file,
)
from bot.cli.broadcasts import BROADCASTS
from bot.cli.content import CONTENT
from bot.cli.webhooks import WEBHOOKS

__all__ = ["COMMANDS", "Call"]

PEOPLE: dict[str, tuple[str, dict[str, Call]]] = {
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
}

SETTINGS: dict[str, tuple[str, dict[str, Call]]] = {
    "integrations": (
        "the space's own Slack workspace (agent desk) and Dialogflow agent",
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
            "slack": Call(
                "POST",
                "/integrations/slack",
                "connect the space's own Slack workspace (checked with Slack first)",
                (
                    ("--bot-token", {"required": True, "help": "Bot User OAuth Token, xoxb-..."}),
                    (
                        "--signing-secret",
                        {"required": True, "help": "Basic Information -> Signing Secret"},
                    ),
                    (
                        "--inbox-channel",
                        {"required": True, "help": "the channel id threads open in (C...)"},
                    ),
                ),
            ),
            "slack-install-link": Call(
                "POST",
                "/integrations/slack/install-link",
                "print a link (valid 15 minutes) that installs the Slack desk with OAuth",
            ),
            "remove-slack": Call(
                "DELETE", "/integrations/slack", "disconnect the space's Slack workspace"
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

COMMANDS: dict[str, tuple[str, dict[str, Call]]] = {
    **PEOPLE,
    **CONTENT,
    **BROADCASTS,
    **WEBHOOKS,
    **SETTINGS,
}
