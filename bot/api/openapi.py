"""The OpenAPI 3.1 document for `/api/v1`, built from the routes themselves.

Each resource module declares its routes in a `Routes` table: the path, the handler,
and what the document says of it (summary, request body model, success status, response
schema, query parameters). `document` walks the application's router, so a route that is
served is documented and nothing else is; the components are the request models' JSON
schemas (and the message parts of the unified model).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from bot.model import parts_adapter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = dict[str, Any]

MAX_ID = 2**63 - 1  # the databases' BIGINT
REF = "#/components/schemas/{model}"
OBJECT: Schema = {"type": "object"}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
ERRORS = (400, 401, 403, 404)
_ERROR = {"$ref": "#/components/responses/Error"}
_DECLARED = "openapi_operation"


@dataclass(frozen=True)
class Operation:
    """What the document says of one route."""

    summary: str
    body: type[BaseModel] | None = None  # the JSON request body
    status: int = 200
    said: str = "done"  # the success response's description
    returns: Schema | None = None  # the success response's schema, when it has a body
    media: str = "application/json"  # ... and its media type
    query: tuple[Schema, ...] = ()
    errors: tuple[int, ...] = ERRORS
    more: Mapping[int, str] = field(default_factory=dict)  # other success answers
    also: Mapping[str, Schema] = field(default_factory=dict)  # other request media types
    refers: tuple[type[BaseModel], ...] = ()  # models named by `query` or `returns`

    def json(self, path: str) -> Schema:
        success: Schema = {"description": self.said}
        if self.returns is not None:
            success["content"] = {self.media: {"schema": self.returns}}
        responses: Schema = {str(self.status): success}
        responses |= {str(status): {"description": said} for status, said in self.more.items()}
        responses |= {str(status): _ERROR for status in self.errors}
        op: Schema = {
            "summary": self.summary,
            "parameters": [*map(path_param, re.findall(r"\{(\w+)\}", path)), *self.query],
        }
        if self.body is not None:
            content = {
                "application/json": {"schema": {"$ref": REF.format(model=self.body.__name__)}}
            }
            op["requestBody"] = {
                "required": True,
                "content": content | {media: {"schema": s} for media, s in self.also.items()},
            }
        op["responses"] = responses
        return op


def declared(handler: Any) -> Operation | None:
    """The operation a handler was declared with (None: not part of the document)."""
    return getattr(handler, "__dict__", {}).get(_DECLARED)


class Routes:
    """One module's routes and their operations: `@routes.get(path, summary, ...)` above a
    handler; `routes.setup(app)` adds them. A handler serves one route."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, str, Handler]] = []

    def route(self, method: str, path: str, op: Operation) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            if declared(handler) is not None:
                raise ValueError(
                    f"{handler.__name__} already serves a route; give this one its own"
                )
            handler.__dict__[_DECLARED] = op
            self._routes.append((method, path, handler))
            return handler

        return declare

    def get(
        self, path: str, summary: str, returns: Schema = OBJECT, said: str = "OK", **doc: Any
    ) -> Callable[[Handler], Handler]:
        return self.route("GET", path, Operation(summary, said=said, returns=returns, **doc))

    def post(self, path: str, summary: str, **doc: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, Operation(summary, **doc))

    def put(self, path: str, summary: str, **doc: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, Operation(summary, **doc))

    def patch(self, path: str, summary: str, **doc: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, Operation(summary, **doc))

    def delete(self, path: str, summary: str, **doc: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, Operation(summary, status=204, **doc))

    def setup(self, app: web.Application) -> None:
        for method, path, handler in self._routes:
            app.router.add_route(method, path, handler)


def query_param(
    name: str, description: str | None = None, required: bool = False, **schema: Any
) -> Schema:
    """A query parameter; without a schema, an id."""
    param: Schema = {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema or ID,
    }
    if description is not None:
        param["description"] = description
    return param


def path_param(name: str) -> Schema:
    """`{..._id}` is an id; any other placeholder a string."""
    schema = ID if name.endswith("_id") else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def list_of(item: Schema, cursor: str) -> Schema:
    """A page: `items` and the cursor of the next one (null at the end)."""
    return {
        "type": "object",
        "required": ["items", cursor],
        "properties": {
            "items": {"type": "array", "items": item},
            cursor: {"type": ["integer", "null"]},
        },
    }


LIMIT = query_param("limit", type="integer", minimum=1, maximum=200)
BEFORE = query_param("before")
CSV = {"said": "CSV", "returns": {"type": "string"}, "media": "text/csv"}


def document(app: web.Application, server: str) -> Schema:
    """The document of every `/api/v1` route the app serves."""
    paths: dict[str, Schema] = {}
    models: list[type[BaseModel]] = []
    for route in app.router.routes():
        op = declared(route.handler)
        if op is None or route.resource is None or route.method == "HEAD":
            continue
        path = route.resource.canonical
        paths.setdefault(path, {})[route.method.lower()] = op.json(path)
        models += [*([op.body] if op.body else []), *op.refers]
    parts = parts_adapter.json_schema(ref_template=REF)
    schemas: dict[str, Schema] = {}
    _add(schemas, parts.pop("$defs", {}))
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        found = schema.pop("$defs", {})
        if model.__name__ not in found:  # a recursive model is among its own $defs
            found[model.__name__] = schema
        _add(schemas, found)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ChanCenter API", "version": "1"},
        "servers": [{"url": server}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Parts": parts, **schemas},
            "responses": {"Error": _PROBLEM},
        },
    }


def _add(schemas: dict[str, Schema], found: dict[str, Schema]) -> None:
    for name, schema in found.items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two request models are named {name}; rename one")


_PROBLEM = {
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


def docs_html(document: Schema) -> str:
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


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app, str(request.url.origin())))


async def docs(request: web.Request) -> web.Response:
    page = docs_html(document(request.app, str(request.url.origin())))
    return web.Response(text=page, content_type="text/html")


def setup(app: web.Application) -> None:
    """The document and its page (public, undocumented themselves)."""
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/v1/docs", docs)
