"""`chancenter fields|tags|views|shortcuts|surveys|automations ...`: what a space is made of.

Declarations only (see `bot.cli.commands`): each command is one REST call.
"""

from __future__ import annotations

import argparse

from bot.cli.args import ID, Arg, Call, _json, _json_file


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


CONTENT: dict[str, tuple[str, dict[str, Call]]] = {
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
                csv=True,
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
}
