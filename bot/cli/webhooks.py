"""`chancenter webhooks add|list|show|deliveries|retry|test|enable|disable|rotate-secret|remove`.

Declarations only (see `bot.cli.commands`): each command is one call to
`/api/v1/webhooks`.
"""

from __future__ import annotations

import argparse

from bot.cli.args import ID, Arg, Call

# the API's names (`bot.workspace.events.EVENTS`), repeated so `--help` imports nothing
# heavy; a test keeps them equal
EVENTS = (
    "message.received",
    "message.sent",
    "message.status",
    "conversation.opened",
    "conversation.handed_over",
    "conversation.assigned",
    "conversation.closed",
    "contact.created",
    "contact.updated",
    "contact.merged",
    "survey.completed",
    "broadcast.completed",
    "automation.webhook",
)

WEBHOOK, ONE = "/webhooks/{webhook_id}", (("webhook_id", ID),)
HIDDEN = {"action": "store_const", "help": argparse.SUPPRESS}
EVENT: Arg = (
    "--event",
    {
        "dest": "events",
        "action": "append",
        "choices": [*EVENTS, "*"],
        "metavar": "EVENT",
        "required": True,
        "help": f"an event to hear (again for more), or '*' for all: {', '.join(EVENTS)}",
    },
)

WEBHOOKS: dict[str, tuple[str, dict[str, Call]]] = {
    "webhooks": (
        "outgoing webhooks: other systems hear the space's events, signed",
        {
            "add": Call(
                "POST",
                "/webhooks",
                "subscribe a URL to events; prints its signing secret (whsec_...) once",
                (("url", {}), EVENT, ("--description", {})),
            ),
            "list": Call("GET", "/webhooks", "list the subscriptions and their deliveries"),
            "show": Call("GET", WEBHOOK, "show a subscription, and why it is off if it is", ONE),
            "deliveries": Call(
                "GET",
                f"{WEBHOOK}/deliveries",
                "latest deliveries, each with its attempts",
                (
                    *ONE,
                    (
                        "--failed",
                        {
                            "dest": "status",
                            "action": "store_const",
                            "const": "failed",
                            "help": "only those that failed",
                        },
                    ),
                    ("--limit", ID),
                ),
            ),
            "retry": Call(
                "POST",
                f"{WEBHOOK}/deliveries/{{delivery_id}}/retry",
                "deliver again (failed, or delivered to replay), with the same webhook-id",
                (*ONE, ("delivery_id", ID)),
            ),
            "test": Call(
                "POST", f"{WEBHOOK}/test", "send a webhook.test event now and show the answer", ONE
            ),
            "enable": Call(
                "PATCH",
                WEBHOOK,
                "switch a subscription back on",
                (*ONE, ("--enabled", {**HIDDEN, "const": True, "default": True})),
            ),
            "disable": Call(
                "PATCH",
                WEBHOOK,
                "switch a subscription off",
                (*ONE, ("--enabled", {**HIDDEN, "const": False, "default": False})),
            ),
            "rotate-secret": Call(
                "PATCH",
                WEBHOOK,
                "give a subscription a new secret; prints it once",
                (*ONE, ("--rotate-secret", {**HIDDEN, "const": True, "default": True})),
            ),
            "remove": Call("DELETE", WEBHOOK, "remove a subscription and its deliveries", ONE),
        },
    ),
}
