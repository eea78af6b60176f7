"""The Bot Framework's two kinds of token, through its SDK (botframework-connector).

In: the Bot Connector service signs each request to the bot; the SDK's JWT validation
checks the issuer, the audience (the app id), the signature against the keys in the
OpenID metadata at `CHANCENTER_BOTFRAMEWORK_OPENID_URL`, the endorsement of the
activity's channel, and that the `serviceurl` claim is the activity's `serviceUrl`.
Out: the bot's app id and password buy a token from the Microsoft identity platform at
`CHANCENTER_BOTFRAMEWORK_LOGIN_URL` (the SDK's app credentials, through msal, which
caches it until shortly before it expires).

Both SDK paths fetch with blocking `requests` inside code the event loop runs: the
signing keys once a day, the token once an hour. Here they are fetched in a thread
first, so the SDK finds them cached and the hub keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import jwt
import requests
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticationConfiguration,
    BotFrameworkAuthentication,
    BotFrameworkAuthenticationFactory,
    JwtTokenExtractor,
    MicrosoftAppCredentials,
    PasswordServiceClientCredentialFactory,
)
from msal import ConfidentialClientApplication

from bot.errors import ConfigError, Unavailable, WebhookRejected

log = logging.getLogger(__name__)

SERVICE = "https://api.botframework.com"  # the tokens' issuer in, and their scope out
MULTI_TENANT = "botframework.com"  # the login "tenant" of a multi-tenant app
KEYS_MAX_AGE = timedelta(hours=23)  # the SDK refetches after a day, blocking: we do first
NEW_KEY_EVERY = timedelta(minutes=5)  # an unknown key id refetches at most this often


class AppCredentials(MicrosoftAppCredentials):
    """The SDK's app id and password credentials, at the login endpoint of the settings.

    msal's own check of an authority asks login.microsoftonline.com about any other host:
    the host is ours to name, so it is not asked (`instance_discovery=False`).
    """

    def __init__(self, app_id: str, password: str, tenant: str | None, login_url: str) -> None:
        super().__init__(app_id, password, channel_auth_tenant=tenant, oauth_scope=SERVICE)
        self.oauth_endpoint = f"{login_url.rstrip('/')}/{self.tenant}"

    def get_access_token(self, force_refresh: bool = False) -> str:
        if self.app is None:  # msal asks the authority for its endpoints here: a thread's job
            self.app = ConfidentialClientApplication(
                self.microsoft_app_id,
                client_credential=self.microsoft_app_password,
                authority=self.oauth_endpoint,
                instance_discovery=False,
                timeout=20,
            )
        return super().get_access_token(force_refresh)

    def close(self) -> None:
        """msal's requests session, and its sockets to the login endpoint."""
        if self.app is not None:
            self.app.http_client.close()


async def fetch_token(credentials: AppCredentials, lock: asyncio.Lock) -> str:
    """The app's token, from msal's cache or the login endpoint, off the event loop; one
    caller at a time, so a cold cache costs one request however many sends wait."""
    async with lock:
        try:
            return await asyncio.to_thread(credentials.get_access_token)
        except PermissionError as exc:  # the SDK's way to say the login endpoint refused
            raise ConfigError(f"Microsoft refused the bot's app id or password: {exc}") from None
        except (requests.RequestException, ValueError) as exc:
            raise Unavailable(f"the Microsoft login endpoint is unreachable: {exc}") from None


class Gate:
    """Checks one channel's inbound requests with the SDK's Bot Framework authentication."""

    def __init__(
        self, app_id: str, password: str, tenant: str | None, openid_url: str, login_url: str
    ) -> None:
        self._openid_url = openid_url
        self._refreshing = asyncio.Lock()  # one fetch at a time: a cold start is no stampede
        self._auth: BotFrameworkAuthentication = BotFrameworkAuthenticationFactory.create(
            channel_service="",
            validate_authority=True,
            to_channel_from_bot_login_url=login_url,
            to_channel_from_bot_oauth_scope=SERVICE,
            to_bot_from_channel_token_issuer=SERVICE,
            oauth_url=SERVICE,
            to_bot_from_channel_open_id_metadata_url=openid_url,
            caller_id=None,
            credential_factory=PasswordServiceClientCredentialFactory(app_id, password, tenant),
            auth_configuration=AuthenticationConfiguration(),
        )

    async def check(self, activity: Activity, header: str | None) -> None:
        """Raise `WebhookRejected` unless the SDK accepts the request's token."""
        if not header:
            raise WebhookRejected("no Authorization header: requests come signed by Microsoft")
        await self._fresh_keys(header)
        try:
            identity = await self._auth.authenticate_request(activity, header)
        except Unavailable:
            raise
        # the SDK says no with PermissionError, PyJWT's errors, or an IndexError when the
        # key id is not among the keys: each is a request we cannot trust
        except (PermissionError, jwt.PyJWTError, IndexError, KeyError, ValueError) as exc:
            raise WebhookRejected(f"the Bot Framework token was refused: {exc}") from None
        if not identity.claims_identity.is_authenticated:
            raise WebhookRejected("the Bot Framework token was refused")

    async def _fresh_keys(self, header: str) -> None:
        metadata: Any = JwtTokenExtractor.get_open_id_metadata(self._openid_url)
        try:
            kid = jwt.get_unverified_header(header.partition(" ")[2]).get("kid")
        except jwt.PyJWTError as exc:
            raise WebhookRejected(f"the Authorization header holds no token: {exc}") from None
        if _fresh(metadata, kid):
            return
        async with self._refreshing:
            if _fresh(metadata, kid):  # fetched while this request waited
                return
            try:
                await asyncio.to_thread(_refresh, metadata)
            except (requests.RequestException, ValueError, KeyError) as exc:
                log.warning("botframework: signing keys unreachable", extra={"error": str(exc)})
                raise Unavailable(
                    f"the Bot Framework's signing keys are unreachable: {exc}"
                ) from None


def _fresh(metadata: Any, kid: str | None) -> bool:
    """The keys are young enough, and hold this key id or were fetched just now."""
    age = datetime.now() - metadata.last_updated
    known = any(key.get("kid") == kid for key in metadata.keys)
    return age < KEYS_MAX_AGE and (known or age < NEW_KEY_EVERY)


def _refresh(metadata: Any) -> None:
    """The SDK's own refetch (`requests`, no await inside), run in a worker thread."""
    asyncio.run(metadata._refresh())  # the SDK's cache, filled its own way
