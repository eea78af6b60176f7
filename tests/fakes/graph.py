"""A fake Meta Graph API: the Messenger Send API, WhatsApp Cloud API messages and media,
and the node reads `channels add` checks credentials with.

Errors use Meta's error object `{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`; tests script them with `fail(...)` (sends) or
`fail(..., read=True)` (node reads), and a proxy's non-JSON error page with
`fail_raw(...)`. The access token is only accepted in the Authorization header.
Every path also answers under a version prefix (`/v21.0/...`), as the real base does.

Sends are checked as Meta checks them: a WhatsApp template needs a `name` and a
`language.code` and its body parameters a non-empty `text`, else error 100 ("(#100)
Invalid parameter", the culprit in `error_data.details`); with `templates` filled, only
those approved templates exist (else 132001) with their number of body parameters (else
132000). A Messenger send needs a `messaging_type`, and `MESSAGE_TAG` an allowed `tag`.

Node reads follow Meta's documented behaviour: `GET /me` with a page token is that
page; `GET /{page-id}` answers any valid token (a page's id and name are public, so
only `/me` proves whose token it is); `GET /{phone-number-id}` answers only a token
allowed on the number's business account, else error 100/33 as for an id that does
not exist; only the `fields` asked for come back (with `id`), an unknown field is
error 100; a bad token is HTTP 400, code 190.

Messenger's User Profile API: `GET /{PSID}?fields=first_name,last_name,profile_pic` with
the token of the page the PSID belongs to (`users`; a PSID is page-scoped) answers the
fields asked for that the person shares, and `id`; a field the person keeps private is
left out, a field the API does not have is error 100. A PSID of another page, or none, is
error 100/33 like any unknown id; an account made with a phone number has no profile:
error 100/2018218, "No profile available for this user." `hang_up` closes the connection
of the next node reads without an answer (a network failure).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

VERSION = r"/{version:v[0-9]+\.[0-9]+}"
UNSUPPORTED = (
    "Unsupported get request. Object with ID '{}' does not exist, cannot be loaded due to "
    "missing permissions, or does not support this operation. Please read the Graph API "
    "documentation at https://developers.facebook.com/docs/graph-api"
)
Failure = tuple[int, dict[str, Any] | str, dict[str, str]]
COMPONENTS = ("header", "body", "button")
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
MESSAGE_TAGS = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT")
# what the User Profile API can give (some only with more permissions)
PROFILE_FIELDS = (
    "id",
    "name",
    "first_name",
    "last_name",
    "profile_pic",
    "locale",
    "timezone",
    "gender",
)
NO_PROFILE = 2018218  # the account was made with a phone number


@dataclass
class FakeGraph:
    tokens: set[str] = field(default_factory=lambda: {"PAGE-TOKEN", "WA-TOKEN"})
    # page id -> its fields and the page access token that is "me"
    pages: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "1001": {"id": "1001", "name": "Acme Support", "token": "PAGE-TOKEN"}
        }
    )
    # phone number id -> its fields; `tokens`: who may read it (the WABA's system users)
    numbers: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "3003": {
                "id": "3003",
                "verified_name": "Acme Support",
                "display_phone_number": "+1 555-010-3003",
                "quality_rating": "GREEN",
                "code_verification_status": "VERIFIED",
                "platform_type": "CLOUD_API",
                "tokens": {"WA-TOKEN"},
            }
        }
    )
    # PSID -> its page (`page`), the fields the person shares, and `no_profile` for an
    # account made with a phone number
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reads: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # path, query
    media: dict[str, bytes] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    read_failures: list[Failure] = field(default_factory=list)
    stall: float = 0.0  # seconds a node read waits before answering (a hung Graph API)
    hang_up: int = 0  # node reads still to drop without an answer
    # (name, language code) -> how many body parameters; empty: any template exists
    templates: dict[tuple[str, str], int] = field(default_factory=dict)
    url: str = ""
    _next: int = 0

    def fail(
        self,
        status: int,
        code: int,
        message: str,
        subcode: int | None = None,
        headers: dict[str, str] | None = None,
        read: bool = False,
    ) -> None:
        error: dict[str, Any] = {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": "AbC",
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        queue = self.read_failures if read else self.failures
        queue.append((status, {"error": error}, headers or {}))

    def fail_raw(self, status: int, text: str, read: bool = False) -> None:
        (self.read_failures if read else self.failures).append((status, text, {}))

    def app(self) -> web.Application:
        app = web.Application()
        for prefix in ("", VERSION):
            app.router.add_post(prefix + "/{object_id}/messages", self._messages)
            app.router.add_get(prefix + "/download/{media_id}", self._download)
            app.router.add_get(prefix + "/{object_id}", self._node)
        return app

    def _token(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token if scheme == "Bearer" and "access_token" not in request.query else None

    def _authorized(self, request: web.Request) -> bool:
        return self._token(request) in self.tokens

    async def _messages(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 190, "Invalid OAuth access token.")
        body = await request.json()
        if self.failures:
            return _scripted(self.failures.pop(0))
        wrong = self._refused(body)
        if wrong is not None:
            return wrong
        self.sent.append((request.match_info["object_id"], body))
        self._next += 1
        if body.get("messaging_product") == "whatsapp":
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": f"wamid.OUT{self._next}"}],
                }
            )
        return web.json_response(
            {"recipient_id": body["recipient"]["id"], "message_id": f"m_OUT{self._next}"}
        )

    def _refused(self, body: Any) -> web.Response | None:
        """Meta's answer to a send it refuses for its shape, or None."""
        if not isinstance(body, dict):
            return _invalid("the request body must be a JSON object")
        if body.get("messaging_product") == "whatsapp":
            return self._template_refused(body) if body.get("type") == "template" else None
        kind = body.get("messaging_type")
        if kind not in MESSAGING_TYPES:
            return _error(
                400, 100, "(#100) param messaging_type must be one of " + ", ".join(MESSAGING_TYPES)
            )
        if kind == "MESSAGE_TAG" and body.get("tag") not in MESSAGE_TAGS:
            return _error(400, 100, "(#100) Param tag must be one of " + ", ".join(MESSAGE_TAGS))
        return None

    def _template_refused(self, body: dict[str, Any]) -> web.Response | None:
        template = body.get("template")
        if not isinstance(template, dict):
            return _invalid("Parameter 'template' is required for type 'template'")
        name, language = template.get("name"), template.get("language")
        if not isinstance(name, str) or not name:
            return _invalid("Parameter 'name' is required for 'template'")
        code = language.get("code") if isinstance(language, dict) else None
        if not isinstance(code, str) or not code:
            return _invalid("Parameter 'code' is required for 'language'")
        params = 0
        for component in template.get("components") or []:
            if not isinstance(component, dict) or component.get("type") not in COMPONENTS:
                return _invalid("Parameter 'type' of a component must be header, body or button")
            for parameter in component.get("parameters") or []:
                text = parameter.get("text") if isinstance(parameter, dict) else None
                if not isinstance(text, str) or not text:  # the only kind we model: text
                    return _invalid(
                        "Parameter 'text' is mandatory for component parameter type 'text'"
                    )
                params += component["type"] == "body"
        expected = self.templates.get((name, code))
        if self.templates and expected is None:
            return _error(
                400,
                132001,
                "(#132001) Template name does not exist in the translation",
                details=f"template name ({name}) does not exist in {code}",
            )
        if expected is not None and expected != params:
            return _error(
                400,
                132000,
                "(#132000) Number of parameters does not match the expected number of params",
                details=f"body: number of localizable_params ({params}) does not match the "
                f"expected number of params ({expected})",
            )
        return None

    async def _node(self, request: web.Request) -> web.Response:
        """`GET /{id}`: me, a page, a phone number or a media file, as the token may see."""
        self.reads.append((request.path, dict(request.query)))
        if self.hang_up:
            self.hang_up -= 1
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if self.stall:
            await asyncio.sleep(self.stall)
        if self.read_failures:
            return _scripted(self.read_failures.pop(0))
        token, object_id = self._token(request), request.match_info["object_id"]
        if not token:
            return _error(400, 104, "An access token is required to request this resource.")
        if token not in self.tokens:
            return _error(
                400,
                190,
                "Invalid OAuth access token - Cannot parse access token",
                headers={"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'},
            )
        if object_id == "me":
            page = next((p for p in self.pages.values() if p["token"] == token), None)
            if page is None:  # a system user's token
                return _fields(request, {"id": "5005", "name": "ChanCenter System User"}, "User")
            return _fields(request, page, "Page")
        if object_id in self.pages:
            return _fields(request, self.pages[object_id], "Page")
        user = self.users.get(object_id)
        if user is not None and self.pages.get(user["page"], {}).get("token") == token:
            return _profile(request, user)
        number = self.numbers.get(object_id)
        if number is not None and token in number["tokens"]:
            return _fields(request, number, "WhatsAppBusinessPhoneNumber")
        if object_id in self.media:
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.url}/download/{object_id}",
                    "mime_type": "image/jpeg",
                    "sha256": "0" * 64,
                    "file_size": len(self.media[object_id]),
                    "id": object_id,
                }
            )
        return _error(
            400, 100, UNSUPPORTED.format(object_id), subcode=33, kind="GraphMethodException"
        )

    async def _download(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 190, "Invalid OAuth access token.")
        return web.Response(body=self.media[request.match_info["media_id"]])


def _fields(request: web.Request, node: dict[str, Any], node_type: str) -> web.Response:
    """The fields asked for, and `id`; Meta refuses a field the node does not have."""
    known = {k: v for k, v in node.items() if k not in ("token", "tokens")}
    asked = [f for f in request.query.get("fields", "").split(",") if f] or list(known)
    for name in asked:
        if name not in known:
            return _error(
                400,
                100,
                f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})",
            )
    return web.json_response({name: known[name] for name in {*asked, "id"}})


def _profile(request: web.Request, user: dict[str, Any]) -> web.Response:
    """The User Profile API: what the person shares of the fields asked for, and `id`."""
    if user.get("no_profile"):
        return _error(400, 100, "(#100) No profile available for this user.", subcode=NO_PROFILE)
    asked = [f for f in request.query.get("fields", "").split(",") if f] or ["name"]
    for name in asked:
        if name not in PROFILE_FIELDS:
            return _error(
                400, 100, f"(#100) Tried accessing nonexisting field ({name}) on node type (User)"
            )
    shared = {k: v for k, v in user.items() if k in PROFILE_FIELDS}
    answer = {name: shared[name] for name in asked if name in shared}
    return web.json_response({**answer, "id": request.match_info["object_id"]})


def _scripted(failure: Failure) -> web.Response:
    status, error, headers = failure
    if isinstance(error, str):
        return web.Response(text=error, status=status, content_type="text/html")
    return web.json_response(error, status=status, headers=headers)


def _invalid(details: str) -> web.Response:
    """Meta's error 100 for a malformed Cloud API send: the culprit is in the details."""
    return _error(400, 100, "(#100) Invalid parameter", details=details)


def _error(
    status: int,
    code: int,
    message: str,
    subcode: int | None = None,
    kind: str = "OAuthException",
    headers: dict[str, str] | None = None,
    details: str | None = None,
) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbC"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return web.json_response({"error": error}, status=status, headers=headers)
