"""`DialogflowBot`: the `Bot` interface over Dialogflow ES's `Sessions.DetectIntent`.

One Dialogflow session per conversation. Every fulfillment message is kept, in
order; what the agent asks of the hub (a human, fields to save) comes back in
`BotReply.handover` and `BotReply.payload`.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.errors import BadCredentials, ConfigError, IntegrationError
from bot.model import MediaPart, Part, QuickRepliesPart, QuickReply, TextPart
from bot.pipeline.bots import BotQuery, BotReply
from bot.settings import Settings

log = logging.getLogger(__name__)

HANDOVER_ACTIONS = frozenset({"handover", "live_agent_handoff"})
LOOPBACK = ("localhost", "127.", "[::1]")


def _client(
    endpoint: str, credentials_file: str | None, credentials_info: dict[str, Any] | None
) -> Any:
    """The real async client; a loopback endpoint is plaintext (local servers, tests)."""
    import grpc
    from google.cloud.dialogflow_v2 import SessionsAsyncClient
    from google.cloud.dialogflow_v2.services.sessions.transports import (
        SessionsGrpcAsyncIOTransport,
    )

    if endpoint.startswith(LOOPBACK):
        channel = grpc.aio.insecure_channel(endpoint)
        return SessionsAsyncClient(transport=SessionsGrpcAsyncIOTransport(channel=channel))
    from google.oauth2 import service_account

    credentials = None
    if credentials_info:
        credentials = service_account.Credentials.from_service_account_info(credentials_info)
    elif credentials_file:
        credentials = service_account.Credentials.from_service_account_file(credentials_file)
    return SessionsAsyncClient(credentials=credentials, client_options={"api_endpoint": endpoint})


class DialogflowBot:
    def __init__(
        self,
        project: str,
        endpoint: str,
        credentials_file: str | None = None,
        credentials_info: dict[str, Any] | None = None,
        language: str = "en",
        environment: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.project = project
        self.name = f"dialogflow:{project}"
        self.language = language
        self.environment = environment
        self.timeout = timeout
        self.failing: str | None = None  # why the credentials were refused, until a success
        self._client = _client(endpoint, credentials_file, credentials_info)

    def session(self, session_id: str) -> str:
        if self.environment:
            return (
                f"projects/{self.project}/agent/environments/{self.environment}"
                f"/users/-/sessions/{session_id}"
            )
        return f"projects/{self.project}/agent/sessions/{session_id}"

    async def detect(self, query: BotQuery) -> BotReply:
        from google.api_core import exceptions
        from google.auth.exceptions import GoogleAuthError
        from google.cloud.dialogflow_v2 import types

        language = query.language or self.language
        if query.event:
            query_input = types.QueryInput(
                event=types.EventInput(name=query.event, language_code=language)
            )
        else:
            query_input = types.QueryInput(
                text=types.TextInput(text=(query.text or "")[:256], language_code=language)
            )
        try:
            response = await self._client.detect_intent(
                request=types.DetectIntentRequest(
                    session=self.session(query.session_id), query_input=query_input
                ),
                timeout=self.timeout,
            )
        except (exceptions.PermissionDenied, exceptions.Unauthenticated, GoogleAuthError) as exc:
            first, self.failing = self.failing is None, str(exc)
            raise BadCredentials(
                f"Dialogflow refused the credentials for project {self.project}: {exc}. "
                "Check the service account's role (Dialogflow API Client) and the project id.",
                first=first,
            ) from exc
        except (TimeoutError, exceptions.GoogleAPICallError) as exc:
            raise IntegrationError(f"Dialogflow: {exc}") from exc
        self.failing = None
        return reply_from(response.query_result)


def reply_from(result: Any) -> BotReply:
    """A `QueryResult` as a `BotReply`: one message per fulfillment message it can show;
    with none (only carousels, speech...) the reply is empty and the hub counts a miss."""
    from google.protobuf.json_format import MessageToDict

    payload: dict[str, Any] = {}
    messages: list[tuple[Part, ...]] = []
    dropped: list[str] = []  # message kinds no channel shows (carousels, speech, ...)
    for message in result.fulfillment_messages:
        kind = message._pb.WhichOneof("message")
        if kind == "text":
            messages += [(TextPart(text=t),) for t in message.text.text if t]
        elif kind == "quick_replies":
            replies = tuple(
                QuickReply(title=r[:20], payload=r) for r in message.quick_replies.quick_replies
            )
            parts: list[Part] = []
            if message.quick_replies.title:
                parts.append(TextPart(text=message.quick_replies.title))
            if replies:
                parts.append(QuickRepliesPart(replies=replies))
            if parts:
                messages.append(tuple(parts))
        elif kind == "image":
            messages.append(
                (
                    MediaPart(
                        type="image",
                        url=message.image.image_uri,
                        caption=message.image.accessibility_text or None,
                    ),
                )
            )
        elif kind == "card":
            card = message.card
            parts = []
            if card.image_uri:
                parts.append(MediaPart(type="image", url=card.image_uri))
            text = "\n".join(t for t in (card.title, card.subtitle) if t)
            if text:
                parts.append(TextPart(text=text))
            buttons = tuple(
                QuickReply(title=b.text[:20], payload=b.postback or b.text)
                for b in card.buttons
                if b.text
            )
            if buttons:
                parts.append(QuickRepliesPart(replies=buttons))
            if parts:
                messages.append(tuple(parts))
        elif kind == "payload":
            payload.update(MessageToDict(message._pb.payload))
        else:
            dropped.append(str(kind))
    if dropped:
        # the hub answers a reply it cannot show as a miss; say why for whoever edits the agent
        log.info(
            "dialogflow messages the channels cannot show",
            extra={"intent": result.intent.display_name, "kinds": dropped},
        )
    if not messages and result.fulfillment_text:
        messages.append((TextPart(text=result.fulfillment_text),))
    parameters = MessageToDict(result._pb.parameters)
    handover = (
        result.action in HANDOVER_ACTIONS
        or payload.get("handover") is True
        or parameters.get("bot_status") in (False, "false")
    )
    return BotReply(
        intent=result.intent.display_name or None,
        confidence=round(result.intent_detection_confidence, 3),
        action=result.action or None,
        fallback=bool(result.intent.is_fallback),
        messages=tuple(messages),
        handover=handover,
        payload=payload,
    )


def create_bot(
    settings: Settings,
    project: str | None = None,
    credentials_info: dict[str, Any] | None = None,
    language: str = "en",
    environment: str | None = None,
) -> DialogflowBot:
    """Entry point `chancenter.bots:dialogflow`: a space's own agent (`project` and the
    stored credentials), else the environment's, which serves the default space."""
    if project is not None:
        return DialogflowBot(
            project,
            settings.dialogflow_endpoint,
            credentials_info=credentials_info,
            language=language,
            environment=environment,
            timeout=settings.dialogflow_timeout,
        )
    if not settings.dialogflow_project:
        raise ConfigError("set CHANCENTER_DIALOGFLOW_PROJECT to use Dialogflow")
    credentials = settings.dialogflow_credentials
    if credentials is not None and not credentials.is_file():
        raise ConfigError(f"CHANCENTER_DIALOGFLOW_CREDENTIALS={credentials}: no such file")
    return DialogflowBot(
        settings.dialogflow_project,
        settings.dialogflow_endpoint,
        str(credentials) if credentials else None,
        timeout=settings.dialogflow_timeout,
    )
