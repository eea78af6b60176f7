"""The OpenAPI 3.1 document for `/api/v1`; message parts come from the pydantic models."""

from __future__ import annotations

from typing import Any

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
                "404": _ERROR,
            },
        }
    }


def _param(name: str, where: str = "query", **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema or {"type": "integer"},
    }


def spec(server: str) -> dict[str, Any]:
    parts = parts_adapter.json_schema(ref_template="#/components/schemas/{model}")
    defs = parts.pop("$defs", {})
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
            "handler": {"enum": ["bot", "flow", "agent"]},
            "status": {"enum": ["open", "closed"]},
            "created_at": {"type": "string", "format": "date-time"},
            "last_message_at": {"type": ["string", "null"], "format": "date-time"},
        },
    }
    message = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "direction": {"enum": ["in", "out"]},
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
                [limit, _param("before"), _param("status", type="string", enum=["open", "closed"])],
            ),
            "/api/v1/conversations/{conversation_id}/messages": _op(
                "A conversation's messages, oldest first",
                _list(message, "next_after"),
                [_param("conversation_id", "path"), limit, _param("after")],
            ),
            "/api/v1/contacts/{contact_id}": _op(
                "One contact with its identities", contact, [_param("contact_id", "path")]
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Parts": parts, **defs},
            "responses": {
                "Error": {
                    "description": "What went wrong and what to do",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error": {"type": "string"},
                                    "detail": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
        },
    }
