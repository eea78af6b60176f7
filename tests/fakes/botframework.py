"""A fake of Microsoft's Bot Framework services, from the documented contract, on ONE
HTTPS server (msal refuses non-https authorities) with a self-signed certificate for
127.0.0.1 and localhost. `ca_file` is its PEM: REQUESTS_CA_BUNDLE for msal and the SDK's
OpenID fetch (both `requests`), `client_ssl()` or SSL_CERT_FILE for aiohttp. It serves
from a thread of its own, since the SDK fetches OpenID metadata with blocking `requests`
inside a coroutine: a server on the test's loop would deadlock.

Inbound, "Authenticate requests from the Bot Connector service": `openid_url` is the
connector's OpenID metadata, its `jwks_uri` one RSA-2048 key with channel endorsements;
`sign(...)` makes the `Authorization` header the connector sends (RS256; iss, aud,
serviceurl, nbf, iat, exp).

Outbound, "Authenticate requests from your bot to the Bot Connector service" (the
Microsoft identity platform's client-credentials flow): the authority is `{base}/{tenant}`
(`login_url` is the prefix), "botframework.com" for a multi-tenant app, the app's own
tenant for a single-tenant one. msal's tenant discovery
(`GET /{tenant}/v2.0/.well-known/openid-configuration`) and `POST /{tenant}/oauth2/v2.0/token`
answer as Entra ID does, with its AADSTS errors.

The Bot Connector REST API reference (Send to / Reply to conversation) under
`service_url`: `POST v3/conversations/{id}/activities[/{activityId}]` needs a token the
token endpoint issued, records the activity in `sent` and answers `{"id": ...}`; errors
are the connector's `{"error": {"code", "message"}}`, scripted with `fail(...)`.

`teams_activity` and friends build inbound activities as Microsoft Teams sends them.

Not faked: instance discovery (pass msal instance_discovery=False), certificate and
managed-identity credentials, token lifetimes (`revoke_tokens()` stands in), the rest of
the connector API (create conversation, update, delete, members, attachments), the user
token (OAuth) service and the emulator's issuers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import re
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

BOTFRAMEWORK = "https://api.botframework.com"
SCOPE = BOTFRAMEWORK + "/.default"
MULTI_TENANT = "botframework.com"
ENDORSEMENTS = ["msteams", "webchat", "directline", "slack", "sms", "emulator"]
ACTIVITIES = re.compile(r"/connector/+v3/conversations/([^/]+)/activities(?:/([^/]+))?/?")
CODES = {400: "BadArgument", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}
CODES |= {412: "PreconditionFailed", 413: "MessageSizeTooBig", 429: "Throttled"}
ERROR_URI = "https://login.microsoftonline.com/error?code="
NOT_FOUND = (
    "Application with identifier '{}' was not found in the directory '{}'. This can happen if "
    "the application has not been installed by the administrator of the tenant or consented "
    "to by any user in the tenant. You may have sent your authentication request to the "
    "wrong tenant."
)
BAD_SECRET = (
    "Invalid client secret provided. Ensure the secret being sent in the request is the "
    "client secret value, not the client secret ID, for a secret added to app '{}'."
)
DENIED = "Authorization has been denied for this request."
_ids = itertools.count(int(time.time() * 1000))  # Teams message ids are epoch milliseconds


@dataclass
class App:
    password: str
    tenant: str | None = None  # None: multi-tenant, whose authority is "botframework.com"


@dataclass
class Sent:
    conversation_id: str
    reply_to_id: str | None
    activity: dict[str, Any]
    token: str
    app_id: str
    id: str = ""  # what the connector answered: the activity's id in the conversation


@dataclass
class FakeBotFramework:
    apps: dict[str, App] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    refused: int = 0  # connector POSTs not accepted: bad token, bad body or scripted
    metadata_fetches: int = 0  # GETs of the OpenID metadata and of the JWKS
    discovery_fetches: int = 0  # GETs of msal's tenant discovery document
    token_requests: list[tuple[str, str]] = field(default_factory=list)  # tenant, client id
    issued: dict[str, str] = field(default_factory=dict)  # access token -> app id
    failures: list[tuple[int, str, int | None]] = field(default_factory=list)
    attachments: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id: type, bytes
    kid: str = "fake-bf-key-1"
    delay: float = 0.0  # seconds the login and key endpoints take: a slow Microsoft
    base: str = ""  # the URLs are set by start()
    openid_url: str = ""
    login_url: str = ""  # the authority's prefix: {login_url}{tenant}
    service_url: str = ""  # the Bot Connector's, as in activities' serviceUrl
    ca_file: str = ""
    _key: rsa.RSAPrivateKey = field(init=False, repr=False)
    _foreign: rsa.RSAPrivateKey | None = field(default=None, init=False, repr=False)
    _dir: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)
    _runner: web.AppRunner | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _server_loop: asyncio.AbstractEventLoop = field(init=False, repr=False)
    _test_loop: asyncio.AbstractEventLoop = field(init=False, repr=False)  # wait_for's
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def authority(self, tenant: str = MULTI_TENANT) -> str:
        return self.login_url + tenant

    def client_ssl(self) -> ssl.SSLContext:
        """A client context trusting the fake, for aiohttp (it ignores REQUESTS_CA_BUNDLE)."""
        return ssl.create_default_context(cafile=self.ca_file)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._test_loop = asyncio.get_running_loop()
        self._dir = tempfile.TemporaryDirectory(prefix="fake-botframework-")
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        context = self._certificate(Path(self._dir.name))
        self._server_loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._server_loop.run_forever, daemon=True)
        self._thread.start()
        await self._in_thread(self._serve(context))

    async def close(self) -> None:
        if self._thread is not None:
            if self._runner is not None:
                await self._in_thread(self._stop(self._runner))
            self._server_loop.call_soon_threadsafe(self._server_loop.stop)
            await asyncio.to_thread(self._thread.join)
            self._server_loop.close()
            self._thread = self._runner = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def __aenter__(self) -> FakeBotFramework:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _in_thread(self, coro: Coroutine[Any, Any, None]) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._server_loop))

    async def _serve(self, context: ssl.SSLContext) -> None:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context).start()
        self.base = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        self.openid_url = f"{self.base}/v1/.well-known/openidconfiguration"
        self.login_url, self.service_url = f"{self.base}/", f"{self.base}/connector/"

    async def _stop(self, runner: web.AppRunner) -> None:
        """Drop kept-alive connections (msal's `requests` session never closes them),
        whose TLS shutdown would otherwise outlive the loop and leak their sockets."""
        for handler in runner.server.connections if runner.server else []:
            if handler.transport is not None:
                handler.transport.abort()
        await runner.cleanup()
        await asyncio.sleep(0.01)  # the aborted transports close their sockets next turn

    def _certificate(self, directory: Path) -> ssl.SSLContext:
        """A self-signed certificate for 127.0.0.1 and localhost, and a server context."""
        key, now = ec.generate_private_key(ec.SECP256R1()), datetime.now(UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake Bot Framework")])
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert_file, key_file = directory / "cert.pem", directory / "key.pem"
        cert_file.write_bytes(cert.public_bytes(Encoding.PEM))
        key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        self.ca_file = str(cert_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    # --- test controls -------------------------------------------------------------------

    def sign(
        self,
        app_id: str,
        service_url: str,
        *,
        audience: str | None = None,
        issuer: str = BOTFRAMEWORK,
        expired: bool = False,
        kid: str | None = None,
        foreign_key: bool = False,
    ) -> str:
        """The `Authorization` header the Bot Connector sends. `expired` lies two hours
        back, past the SDK's five minutes of clock tolerance; `foreign_key` signs with a
        key the JWKS does not hold, under the same kid."""
        now = int(time.time()) - (7200 if expired else 0)
        claims = {"serviceurl": service_url, "iss": issuer, "aud": audience or app_id}
        claims |= {"nbf": now - 5, "iat": now, "exp": now + 3600}
        if foreign_key and self._foreign is None:
            self._foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key = self._foreign if foreign_key else self._key
        return "Bearer " + jwt.encode(claims, key, "RS256", headers={"kid": kid or self.kid})

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: int | None = None,
        message: str = "The service failed to process the request.",
    ) -> None:
        self.failures.extend([(status, message, retry_after)] * times)

    def revoke_tokens(self) -> None:
        """Forget every issued access token, as if all had expired."""
        self.issued.clear()

    async def wait_for(self, n: int, timeout: float = 10) -> list[Sent]:
        try:
            async with asyncio.timeout(timeout):
                while len(self.sent) < n:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            got = [s.activity.get("type") for s in self.sent]
            raise AssertionError(f"waited for {n} activities, got {len(got)}: {got}") from None
        return self.sent[:n]

    # --- the server ----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/.well-known/openidconfiguration", self._openid)
        app.router.add_get("/v1/.well-known/keys", self._keys)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._discovery)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_post("/connector/{tail:.*}", self._activity)
        app.router.add_get("/connector/v3/attachments/{id}/views/{view}", self._attachment)
        return app

    async def _openid(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        self.metadata_fetches += 1
        return web.json_response(
            {
                "issuer": BOTFRAMEWORK,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.base}/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        self.metadata_fetches += 1
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk |= {"kid": self.kid, "use": "sig", "endorsements": ENDORSEMENTS}
        return web.json_response({"keys": [jwk]})

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_fetches += 1
        tenant = request.match_info["tenant"]
        if tenant not in {MULTI_TENANT} | {a.tenant for a in self.apps.values()}:
            return _aad(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        root, oauth = f"{self.base}/{tenant}", f"{self.base}/{tenant}/oauth2/v2.0"
        return web.json_response(
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{oauth}/authorize",
                "token_endpoint": f"{oauth}/token",
                "device_authorization_endpoint": f"{oauth}/devicecode",
                "jwks_uri": f"{root}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "response_types_supported": ["code", "id_token", "code id_token", "token"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "tenant_region_scope": "WW",
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        tenant, form = request.match_info["tenant"], await request.post()
        client_id, scope = str(form.get("client_id", "")), form.get("scope")
        self.token_requests.append((tenant, client_id))
        if form.get("grant_type") != "client_credentials":
            message = "The app requested an unsupported grant type."
            return _aad(400, "unsupported_grant_type", 70003, message)
        app = self.apps.get(client_id)
        if app is None or (app.tenant or MULTI_TENANT) != tenant:
            return _aad(400, "unauthorized_client", 700016, NOT_FOUND.format(client_id, tenant))
        if form.get("client_secret") != app.password:
            return _aad(401, "invalid_client", 7000215, BAD_SECRET.format(client_id))
        if scope != SCOPE:
            message = f"The provided value for the input parameter 'scope' is not valid: {scope}"
            return _aad(400, "invalid_scope", 70011, message)
        token = self._access_token(client_id, tenant)
        self.issued[token] = client_id
        answer = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599}
        return web.json_response(answer | {"access_token": token})

    def _access_token(self, app_id: str, tenant: str) -> str:
        """A fresh token shaped like Entra ID's app-only tokens for the Bot Connector."""
        now = int(time.time())
        claims = {"aud": BOTFRAMEWORK, "iss": f"https://sts.windows.net/{tenant}/"}
        claims |= {"iat": now, "nbf": now, "exp": now + 3599, "ver": "1.0", "tid": tenant}
        claims |= {"appid": app_id, "appidacr": "1", "jti": secrets.token_urlsafe(12)}
        return jwt.encode(claims, self._key, "RS256", headers={"kid": "fake-entra-key"})

    async def _activity(self, request: web.Request) -> web.Response:
        match = ACTIVITIES.fullmatch(request.url.raw_path)
        if match is None:
            return _connector(404, "NotFound", "Not found.")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        app_id = self.issued.get(token) if scheme == "Bearer" else None
        if app_id is None:
            self.refused += 1
            return _connector(401, "Unauthorized", DENIED)
        try:
            activity = await request.json()
        except ValueError:
            activity = None
        if not isinstance(activity, dict) or not activity.get("type"):
            self.refused += 1
            return _connector(400, "BadArgument", "Invalid Activity: type is required.")
        if self.failures:
            self.refused += 1
            status, message, retry_after = self.failures.pop(0)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return _connector(status, CODES.get(status, "ServiceError"), message, headers)
        reply_to = unquote(match[2]) if match[2] else None
        made = str(next(_ids))
        self.sent.append(Sent(unquote(match[1]), reply_to, activity, token, app_id, made))
        self._test_loop.call_soon_threadsafe(self._changed.set)
        return web.json_response({"id": made})

    async def _attachment(self, request: web.Request) -> web.Response:
        """A file a user pasted into Teams, kept by the connector: the bot's token only."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.issued:
            return _connector(401, "Unauthorized", DENIED)
        found = self.attachments.get(request.match_info["id"])
        if found is None:
            return _connector(404, "NotFound", "The attachment was not found.")
        return web.Response(body=found[1], content_type=found[0])

    def attachment_url(self, attachment_id: str) -> str:
        return f"{self.service_url.rstrip('/')}/v3/attachments/{attachment_id}/views/original"


def _aad(status: int, error: str, code: int, description: str) -> web.Response:
    """Entra ID's OAuth error body, with its trace and correlation ids."""
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    ids = f"Trace ID: {trace} Correlation ID: {correlation} Timestamp: {stamp}"
    body = {"error": error, "error_description": f"AADSTS{code}: {description} {ids}"}
    body |= {"error_codes": [code], "timestamp": stamp, "trace_id": str(trace)}
    body |= {"correlation_id": str(correlation), "error_uri": ERROR_URI + str(code)}
    return web.json_response(body, status=status)


def _connector(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status, headers=headers)


# --- inbound activities as Microsoft Teams sends them ----------------------------------


def teams_activity(
    kind: str = "message",
    *,
    text: str | None = "hello",
    user_id: str = "29:1GcS4EyB_oSI8A88XmWBN7NJFyMqe3QGnJdgLfFGkJnVelzRGos0bPbpsfJjcbAD22bm",
    user_name: str = "Megan Bowen",
    aad_object_id: str = "48d31887-5fad-4d73-a9f5-3c356e68a038",
    conversation_id: str = "a:1personal-chat-with-megan-bowen",
    conversation_type: str = "personal",
    tenant_id: str = "tenant-1",
    app_id: str,
    bot_name: str = "Acme Bot",
    service_url: str,
    activity_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An activity as Teams posts it to the bot. `extra` is merged in last, except that
    `channelData` is merged into the built one and `entities` follow the clientInfo."""
    now = datetime.now(UTC)
    conversation: dict[str, Any] = {"conversationType": conversation_type, "id": conversation_id}
    conversation["tenantId"] = tenant_id
    channel_data: dict[str, Any] = {"tenant": {"id": tenant_id}}
    if conversation_type in ("groupChat", "channel"):
        conversation["isGroup"] = True
    if conversation_type == "channel":  # "19:...@thread.tacv2;messageid=..." in a thread
        team = conversation_id.split(";")[0]
        channel_data |= {"teamsChannelId": team, "teamsTeamId": team}
        channel_data |= {"channel": {"id": team}, "team": {"id": team}}
    client = {"type": "clientInfo", "locale": "en-US", "country": "US", "platform": "Web"}
    activity: dict[str, Any] = {
        "type": kind,
        "id": activity_id or str(next(_ids)),
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "localTimestamp": now.astimezone(timezone(timedelta(hours=1))).isoformat(),
        "localTimezone": "Europe/Berlin",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "from": {"id": user_id, "name": user_name, "aadObjectId": aad_object_id},
        "conversation": conversation,
        "recipient": {"id": "28:" + app_id, "name": bot_name},
        "locale": "en-US",
        "channelData": channel_data | extra.pop("channelData", {}),
        "entities": [client | {"timezone": "Europe/Berlin"}, *extra.pop("entities", [])],
    }
    if kind == "message":
        activity["textFormat"] = "plain"
        if text is not None:
            activity["text"] = text
    return activity | extra


def mention(text: str, app_id: str, bot_name: str = "Acme Bot") -> tuple[str, dict[str, Any]]:
    """The text with the bot @mentioned in front, as in a channel, and its entity."""
    tag = f"<at>{bot_name}</at>"
    entity = {"type": "mention", "mentioned": {"id": "28:" + app_id, "name": bot_name}}
    return f"{tag} {text}", entity | {"text": tag}


def conversation_update(*, app_id: str, bot_name: str = "Acme Bot", **kw: Any) -> dict[str, Any]:
    """The bot added to a conversation (installed in personal scope, or to a team)."""
    if kw.get("conversation_type") == "channel":
        kw["channelData"] = {"eventType": "teamMemberAdded"} | kw.get("channelData", {})
    added = [{"id": "28:" + app_id, "name": bot_name}]
    kw |= {"text": None, "app_id": app_id, "bot_name": bot_name, "membersAdded": added}
    return teams_activity("conversationUpdate", **kw)


def installation_update(action: str = "add", *, app_id: str, **kw: Any) -> dict[str, Any]:
    """The app installed ("add") or uninstalled ("remove") in a scope."""
    return teams_activity("installationUpdate", text=None, app_id=app_id, action=action, **kw)


def message_reaction(
    reply_to_id: str, reaction: str = "like", *, removed: bool = False, app_id: str, **kw: Any
) -> dict[str, Any]:
    """A reaction added to (or removed from) the message `reply_to_id`."""
    kw["reactionsRemoved" if removed else "reactionsAdded"] = [{"type": reaction}]
    return teams_activity("messageReaction", text=None, app_id=app_id, replyToId=reply_to_id, **kw)
