"""The OpenAPI 3.1 document for `/api/v1`; message parts come from the pydantic models."""

from __future__ import annotations

from html import escape
from typing import Any

from pydantic import BaseModel

from bot.model import parts_adapter

_ERROR = {"$ref": "#/components/responses/Error"}


def _list(item: dict[str, Any], cursor: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", cursor],
        "properties": {
            "items": {"type": "array", "items": item},
            cursor: {"type": ["integer", "null"]},
        },
    }


def _op(summary: str, schema: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                "400": _ERROR,
                "401": _ERROR,
                "403": _ERROR,
                "404": _ERROR,
            },
        }
    }


def _param(name: str, where: str = "query", **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema or {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    }


def _write(
    summary: str,
    model: type[BaseModel],
    status: str,
    params: list[dict[str, Any]],
    method: str = "post",
) -> dict[str, Any]:
    return {
        method: {
            "summary": summary,
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                    }
                },
            },
            "responses": {
                status: {"description": "done"},
                "400": _ERROR,
                "401": _ERROR,
                "403": _ERROR,
                "404": _ERROR,
            },
        }
    }


def _delete(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "delete": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "204": {"description": "done"},
                "400": _ERROR,
                "401": _ERROR,
                "403": _ERROR,
                "404": _ERROR,
            },
        }
    }


def _invites(operation: dict[str, Any]) -> dict[str, Any]:
    """A POST that may invite instead of add: someone with an account elsewhere accepts."""
    operation["post"]["responses"]["202"] = {
        "description": "invited: someone with an account in another organization accepts "
        "with the code (shown once)"
    }
    return operation


def spec(server: str) -> dict[str, Any]:
    from bot.api.contacts import (
        BulkTags,
        ContactChange,
        FieldChange,
        FieldValue,
        Merge,
        NewField,
        Tags,
    )
    from bot.api.conversations import AgentMessage, Assignment, Note
    from bot.api.integrations import DialogflowIntegration
    from bot.api.invitations import InvitationCode
    from bot.api.org import NewOrgMember, NewSpace, OrgRole
    from bot.api.people import Member, NewTeam, NewUser, SpaceChange, TeamChange, UserChange
    from bot.api.shortcuts import NewShortcut, ShortcutChange
    from bot.api.tokens import NewToken
    from bot.api.views import NewView, ViewChange
    from surveys.api import Send
    from surveys.definition import Survey

    parts = parts_adapter.json_schema(ref_template="#/components/schemas/{model}")
    defs = parts.pop("$defs", {})
    for model in (
        FieldValue,
        ContactChange,
        NewField,
        NewShortcut,
        NewView,
        Tags,
        BulkTags,
        Merge,
        AgentMessage,
        Assignment,
        Note,
        NewToken,
        NewUser,
        UserChange,
        NewTeam,
        Member,
        SpaceChange,
        NewSpace,
        FieldChange,
        ViewChange,
        ShortcutChange,
        NewOrgMember,
        OrgRole,
        TeamChange,
        DialogflowIntegration,
        InvitationCode,
        Send,
        Survey,
    ):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[model.__name__] = schema
    nullable_str = {"type": ["string", "null"]}
    conversation = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "contact": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "name": nullable_str},
            },
            "channel_id": {"type": "string"},
            "handler": {"enum": ["bot", "flow", "waiting", "agent"]},
            "status": {"enum": ["open", "closed"]},
            "assignee_id": {"type": ["integer", "null"]},
            "team_id": {"type": ["integer", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "last_message_at": {"type": ["string", "null"], "format": "date-time"},
            "closed_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    message = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "direction": {"enum": ["in", "out", "note"]},
            "sender": {
                "type": "object",
                "description": "who sent it; `id`: a user's, automation's or broadcast's id, "
                "`builtin` or the integration for a bot, the survey's id or `away` for a flow",
                "properties": {
                    "type": {
                        "enum": [
                            "contact",
                            "user",
                            "bot",
                            "flow",
                            "automation",
                            "broadcast",
                            "unknown",
                        ]
                    },
                    "id": {"type": ["integer", "string", "null"]},
                },
            },
            "parts": {"$ref": "#/components/schemas/Parts"},
            "status": {"type": "string"},
            "error": nullable_str,
            "reply_to_id": {"type": ["integer", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
        },
    }
    contact = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": nullable_str,
            "language": nullable_str,
            "phone": nullable_str,
            "email": nullable_str,
            "status": {"enum": ["open", "closed"]},
            "assignee_id": {"type": ["integer", "null"]},
            "team_id": {"type": ["integer", "null"]},
            "fields": {"type": "object", "description": "custom field values by key"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string", "format": "date-time"},
            "last_message_at": {"type": ["string", "null"], "format": "date-time"},
            "identities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "channel_id": {"type": "string"},
                        "external_id": {"type": "string"},
                    },
                },
            },
        },
    }
    limit = _param("limit", minimum=1, maximum=200, type="integer")
    return {
        "openapi": "3.1.0",
        "info": {"title": "ChanCenter API", "version": "1"},
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/conversations": _op(
                "List conversations, newest first",
                _list(conversation, "next_before"),
                [
                    limit,
                    _param("before"),
                    _param("status", type="string", enum=["open", "closed"]),
                    {
                        **_param(
                            "handler", type="string", enum=["bot", "flow", "waiting", "agent"]
                        ),
                        "description": "waiting: handed over, nobody has it yet (the queue)",
                    },
                    _param("channel_id", type="string", maxLength=32),
                    _param("contact_id"),
                    {
                        **_param("assignee_id", type="integer", minimum=0, maximum=2**63 - 1),
                        "description": "0: unassigned",
                    },
                    {
                        **_param("team_id", type="integer", minimum=0, maximum=2**63 - 1),
                        "description": "0: no team",
                    },
                    {
                        **_param("view_id"),
                        "description": "the conversations of the view's contacts",
                    },
                ],
            ),
            "/api/v1/conversations/{conversation_id}": _op(
                "One conversation", conversation, [_param("conversation_id", "path")]
            ),
            "/api/v1/contacts/{contact_id}": {
                **_op(
                    "One contact: fields, tags, assignee, team and identities",
                    contact,
                    [_param("contact_id", "path")],
                ),
                **_write(
                    "Change name, email, phone or language (null clears one)",
                    ContactChange,
                    "200",
                    [_param("contact_id", "path")],
                    "patch",
                ),
            },
            "/api/v1/contacts": _op(
                "Contacts, newest first: `q` searches, `filter` is a JSON filter group",
                _list(contact, "next_before"),
                [
                    limit,
                    _param("before"),
                    _param("q", type="string"),
                    {
                        "name": "filter",
                        "in": "query",
                        "required": False,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Group"}}
                        },
                    },
                    _param("count", type="string", enum=["0", "1", "true", "false"]),
                ],
            ),
            "/api/v1/fields": {
                **_op("The space's custom fields", {"type": "object"}, []),
                **_write("Define a custom field", NewField, "201", []),
            },
            "/api/v1/contacts/{contact_id}/fields/{key}": _write(
                "Set (or clear with null) a contact's custom field",
                FieldValue,
                "200",
                [_param("contact_id", "path"), _param("key", "path", type="string")],
                "put",
            ),
            "/api/v1/contacts/{contact_id}/tags": _write(
                "Tag a contact", Tags, "200", [_param("contact_id", "path")]
            ),
            "/api/v1/conversations/{conversation_id}/messages": {
                **_op(
                    "A conversation's messages, oldest first",
                    _list(message, "next_after"),
                    [
                        _param("conversation_id", "path"),
                        limit,
                        _param("after"),
                        _param("include", enum=["notes"]),
                    ],
                ),
                **_write(
                    "Send a message to the contact as an agent (Idempotency-Key honoured)",
                    AgentMessage,
                    "202",
                    [_param("conversation_id", "path")],
                ),
            },
            "/api/v1/conversations/{conversation_id}/notes": _write(
                "Add an internal note (never sent; listed with ?include=notes)",
                Note,
                "201",
                [_param("conversation_id", "path")],
            ),
            "/api/v1/conversations/{conversation_id}/assign": _write(
                "Assign to a user (null unassigns) or a team (round robin, else its queue); "
                "the contact is assigned with it",
                Assignment,
                "200",
                [_param("conversation_id", "path")],
            ),
            "/api/v1/contacts/{contact_id}/assign": _write(
                "Assign the contact: user_id (null: nobody), team_id alone (round robin in the "
                "team), or both; its open conversations follow",
                Assignment,
                "200",
                [_param("contact_id", "path")],
            ),
            "/api/v1/conversations/{conversation_id}/close": {
                "post": {
                    "summary": "Close; the contact's next message opens a new one with the bot "
                    "(with the space's csat_survey, the survey is asked in this conversation)",
                    "parameters": [_param("conversation_id", "path")],
                    "responses": {"200": {"description": "closed"}, "401": _ERROR, "404": _ERROR},
                }
            },
            "/api/v1/contacts/{contact_id}/merge": _write(
                "Merge another contact into this one (undoable)",
                Merge,
                "201",
                [_param("contact_id", "path")],
            ),
            "/api/v1/merges/{merge_id}/undo": {
                "post": {
                    "summary": "Undo a merge",
                    "parameters": [_param("merge_id", "path")],
                    "responses": {
                        "200": {"description": "undone"},
                        "400": _ERROR,
                        "401": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
            "/api/v1/tags/bulk": _write(
                "Tag or untag many contacts (ids or a view)", BulkTags, "200", []
            ),
            "/api/v1/contacts.csv": {
                "get": {
                    "summary": "Contacts as CSV, streamed (`view` limits them to a saved view)",
                    "parameters": [_param("view")],
                    "responses": {
                        "200": {
                            "description": "CSV",
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
            "/api/v1/shortcuts": {
                **_op("Shortcuts: shared, and the caller's own", {"type": "object"}, []),
                **_write("Save a shortcut (its variables are checked)", NewShortcut, "201", []),
            },
            "/api/v1/shortcuts/{shortcut_id}/render": _op(
                "A shortcut rendered for one contact",
                {"type": "object"},
                [_param("shortcut_id", "path"), {**_param("contact_id"), "required": True}],
            ),
            "/api/v1/contacts/{contact_id}/export": _op(
                "Everything held about one contact (privacy export)",
                {"type": "object"},
                [_param("contact_id", "path")],
            ),
            "/api/v1/contacts/{contact_id}/erase": {
                "post": {
                    "summary": "Erase a contact: messages redacted, fields and identities removed",
                    "parameters": [_param("contact_id", "path")],
                    "responses": {
                        "200": {"description": "erased"},
                        "401": _ERROR,
                        "403": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
            "/api/v1/users": {
                **_op("The space's users and their roles", {"type": "object"}, []),
                **_invites(_write("Add a user to the space", NewUser, "201", [])),
            },
            "/api/v1/invitations": _op(
                "Pending invitations: the space's (managers), the organization's (its admins)",
                {"type": "object"},
                [],
            ),
            "/api/v1/invitations/accept": _write(
                "Accept an invitation with its code, as yourself; joining a space answers a "
                "token for it (shown once)",
                InvitationCode,
                "200",
                [],
            ),
            "/api/v1/invitations/{invitation_id}": _delete(
                "Withdraw a pending invitation", [_param("invitation_id", "path")]
            ),
            "/api/v1/users/{user_id}": _write(
                "Change the space's membership (role, capacity: managers) or the person's "
                "availability and Slack id (themselves, or an admin of every organization they "
                "belong to; an agent token only its own availability)",
                UserChange,
                "200",
                [_param("user_id", "path")],
                "patch",
            ),
            "/api/v1/teams": {
                **_op("Teams and their members", {"type": "object"}, []),
                **_write("Create a team", NewTeam, "201", []),
            },
            "/api/v1/teams/{team_id}/members": _write(
                "Add a user to a team", Member, "200", [_param("team_id", "path")]
            ),
            "/api/v1/teams/{team_id}": {
                **_write(
                    "Rename a team or give it its own Slack inbox channel",
                    TeamChange,
                    "200",
                    [_param("team_id", "path")],
                    "patch",
                ),
                **_delete("Delete a team", [_param("team_id", "path")]),
            },
            "/api/v1/surveys": {
                **_op("The space's surveys", {"type": "object"}, []),
                "post": {
                    "summary": "Save a survey, written in JSON or YAML (application/yaml)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Survey"}},
                            "application/yaml": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "201": {"description": "saved"},
                        "400": _ERROR,
                        "401": _ERROR,
                        "403": _ERROR,
                    },
                },
            },
            "/api/v1/surveys/{survey_id}": {
                **_op("One survey's definition", {"type": "object"}, [_param("survey_id", "path")]),
                **_delete("Remove a survey and its results", [_param("survey_id", "path")]),
            },
            "/api/v1/surveys/{survey_id}/send": _write(
                "Start the survey for contacts or a view (who was skipped, and why)",
                Send,
                "200",
                [_param("survey_id", "path")],
            ),
            "/api/v1/surveys/{survey_id}/results": _op(
                "Answers and status per contact, with completion figures",
                {"type": "object"},
                [_param("survey_id", "path"), limit, _param("before")],
            ),
            "/api/v1/surveys/{survey_id}/results.csv": {
                "get": {
                    "summary": "The results as CSV, a column per question",
                    "parameters": [_param("survey_id", "path")],
                    "responses": {
                        "200": {
                            "description": "CSV",
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        "401": _ERROR,
                        "403": _ERROR,
                        "404": _ERROR,
                    },
                }
            },
            "/api/v1/integrations": _op(
                "The space's integrations (never their credentials), with their last error",
                {"type": "object"},
                [],
            ),
            "/api/v1/integrations/dialogflow": {
                **_write(
                    "Answer this space with its own Dialogflow agent",
                    DialogflowIntegration,
                    "200",
                    [],
                    "put",
                ),
                **_delete("Back to the hub's default bot", []),
            },
            "/api/v1/teams/{team_id}/members/{user_id}": _delete(
                "Take a user out of a team", [_param("team_id", "path"), _param("user_id", "path")]
            ),
            "/api/v1/space": {
                **_op("The space's settings", {"type": "object"}, []),
                **_write(
                    "Change the space's name, time zone and settings; a setting sent as null "
                    "is removed, one left out is unchanged (name and time zone cannot be null)",
                    SpaceChange,
                    "200",
                    [],
                    "patch",
                ),
            },
            "/api/v1/spaces": {
                **_op("The organization's spaces (organization admins)", {"type": "object"}, []),
                **_write("Create a space; answers an admin token for it", NewSpace, "201", []),
            },
            "/api/v1/usage": _op(
                "The space's messages per month and channel (managers, admins, billing)",
                {"type": "object"},
                [],
            ),
            "/api/v1/organization/usage": _op(
                "The subscription's figures: the organization's spaces, members and channels, "
                "and messages per month and space (billing and admin tokens)",
                {"type": "object"},
                [],
            ),
            "/api/v1/tokens": {
                **_op(
                    "The space's API tokens (never their secrets), each with whose it is "
                    "(user_id, user_name, user_email)",
                    {"type": "object"},
                    [],
                ),
                **_write(
                    "Create a token (shown once) acting as `user_id` (a member of the space; "
                    "default: you), never above their role",
                    NewToken,
                    "201",
                    [],
                ),
            },
            "/api/v1/tokens/{token_id}": _delete("Revoke a token", [_param("token_id", "path")]),
            "/api/v1/contacts/{contact_id}/tags/{name}": _delete(
                "Untag a contact",
                [_param("contact_id", "path"), _param("name", "path", type="string")],
            ),
            "/api/v1/tags": _op(
                "The space's tags and how many contacts carry each", {"type": "object"}, []
            ),
            "/api/v1/fields/{field_id}": {
                **_write(
                    "Relabel a field or change a choice field's options",
                    FieldChange,
                    "200",
                    [_param("field_id", "path")],
                    "patch",
                ),
                **_delete("Delete a field and its values", [_param("field_id", "path")]),
            },
            "/api/v1/views/{view_id}": {
                **_write(
                    "Rename a view or change its filter",
                    ViewChange,
                    "200",
                    [_param("view_id", "path")],
                    "patch",
                ),
                **_delete("Delete a view", [_param("view_id", "path")]),
            },
            "/api/v1/shortcuts/{shortcut_id}": {
                **_write(
                    "Change a shortcut",
                    ShortcutChange,
                    "200",
                    [_param("shortcut_id", "path")],
                    "patch",
                ),
                **_delete("Delete a shortcut", [_param("shortcut_id", "path")]),
            },
            "/api/v1/organization": _op(
                "The organization and its members (organization admins)", {"type": "object"}, []
            ),
            "/api/v1/organization/members": _invites(
                _write(
                    "Add someone to the organization (admin, billing_admin or member)",
                    NewOrgMember,
                    "201",
                    [],
                )
            ),
            "/api/v1/organization/members/{user_id}": {
                **_write(
                    "Change a member's organization role",
                    OrgRole,
                    "200",
                    [_param("user_id", "path")],
                    "patch",
                ),
                **_delete(
                    "Remove someone from the organization and its spaces",
                    [_param("user_id", "path")],
                ),
            },
            "/api/v1/views": {
                **_op("Saved views: shared, and the caller's own", {"type": "object"}, []),
                **_write("Save a view (its filter is checked first)", NewView, "201", []),
            },
            "/api/v1/views/{view_id}/contacts": _op(
                "The contacts a view selects",
                _list(contact, "next_before"),
                [
                    _param("view_id", "path"),
                    limit,
                    _param("before"),
                    _param("count", type="string", enum=["0", "1", "true", "false"]),
                ],
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Parts": parts, **defs},
            "responses": {
                "Error": {
                    "description": "What went wrong and what to do (RFC 9457)",
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "required": ["title", "status", "detail"],
                                "properties": {
                                    "type": {"type": "string"},
                                    "title": {"type": "string"},
                                    "status": {"type": "integer"},
                                    "detail": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
        },
    }


def docs_html(document: dict[str, Any]) -> str:
    """A browsable page of the API, from the same document (no assets from elsewhere)."""
    rows = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            schema = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            rows.append(
                f"<tr><td><code>{escape(method.upper())}</code></td>"
                f"<td><code>{escape(path)}</code></td><td>{escape(op.get('summary', ''))}</td>"
                f"<td>{escape(params)}</td><td>{escape(schema)}</td></tr>"
            )
    return (
        "<!doctype html><meta charset=utf-8><title>ChanCenter API</title>"
        "<style>body{font:14px system-ui;margin:2rem}td,th{padding:.3rem .6rem;"
        "border-bottom:1px solid #ddd;text-align:left;vertical-align:top}</style>"
        "<h1>ChanCenter API</h1><p>Send <code>Authorization: Bearer &lt;token&gt;</code> "
        "(<code>chancenter init</code> prints one). Errors are RFC 9457 problem documents. "
        "The full document: <a href=openapi.json>openapi.json</a>.</p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>parameters</th>"
        f"<th>body</th></tr>{''.join(rows)}</table>"
    )
