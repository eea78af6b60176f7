"""A local Dialogflow ES: `google.cloud.dialogflow.v2.Sessions/DetectIntent` over plaintext gRPC.

It speaks the real protobuf messages, so the real `SessionsAsyncClient` talks to it.
Intents are a small table: an event name or a lowercase word in the text picks one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.cloud.dialogflow_v2 import types
from google.protobuf import struct_pb2

SERVICE = "google.cloud.dialogflow.v2.Sessions"


@dataclass
class Intent:
    name: str
    texts: list[str] = field(default_factory=list)
    action: str = ""
    payload: dict[str, Any] | None = None
    quick_replies: list[str] = field(default_factory=list)
    parameters: dict[str, Any] | None = None
    fallback: bool = False
    rich: list[types.Intent.Message] = field(default_factory=list)  # kinds the hub can't show


INTENTS = {
    "WELCOME": Intent(
        "Welcome", ["Hi! I am the Dialogflow bot."], quick_replies=["Pricing", "Human"]
    ),
    "pricing": Intent("Pricing", ["Plans start at 10 EUR.", "Anything else?"]),
    "human": Intent("Talk to a human", ["Connecting you to a person."], action="handover"),
    "sales": Intent(
        "Sales",
        ["A sales person will write."],
        payload={"handover": True, "team": "Sales", "note": "wants a quote"},
    ),
    "feedback": Intent("Feedback", ["Happy to hear it."], payload={"start_flow": "feedback"}),
    "plan": Intent(
        "Plan", ["Noted."], payload={"set_fields": {"plan": "pro"}}, parameters={"plan": "pro"}
    ),
    "carousel": Intent(
        "Catalogue",
        rich=[
            types.Intent.Message(
                carousel_select=types.Intent.Message.CarouselSelect(
                    items=[types.Intent.Message.CarouselSelect.Item(title="Pro plan")]
                ),
                platform=types.Intent.Message.Platform.ACTIONS_ON_GOOGLE,
            ),
            types.Intent.Message(
                simple_responses=types.Intent.Message.SimpleResponses(
                    simple_responses=[types.Intent.Message.SimpleResponse(text_to_speech="Pro")]
                )
            ),
        ],
    ),
}
FALLBACK = Intent("Default Fallback Intent", ["Sorry, I did not get that."], fallback=True)


class FakeDialogflow:
    def __init__(self) -> None:
        self.requests: list[types.DetectIntentRequest] = []
        self.delay = 0.0  # seconds before answering: a slow agent
        self.fail: grpc.StatusCode | None = None  # answer every call with this error
        self.port = 0

    async def detect_intent(
        self, request: types.DetectIntentRequest, context: grpc.aio.ServicerContext
    ) -> types.DetectIntentResponse:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            await context.abort(self.fail, "fake Dialogflow failure")
        query = request.query_input
        if query.event.name:
            intent = INTENTS.get(query.event.name, FALLBACK)
            text = ""
        else:
            text = query.text.text
            words = text.lower().split()
            intent = next((INTENTS[w] for w in words if w in INTENTS), FALLBACK)
        return types.DetectIntentResponse(
            response_id=f"r-{len(self.requests)}", query_result=self._result(intent, text, query)
        )

    def _result(self, intent: Intent, text: str, query: types.QueryInput) -> types.QueryResult:
        messages = [
            types.Intent.Message(text=types.Intent.Message.Text(text=[t])) for t in intent.texts
        ]
        if intent.quick_replies:
            messages.append(
                types.Intent.Message(
                    quick_replies=types.Intent.Message.QuickReplies(
                        title="Choose:", quick_replies=intent.quick_replies
                    )
                )
            )
        messages += intent.rich
        if intent.payload is not None:
            payload = struct_pb2.Struct()
            payload.update(intent.payload)
            messages.append(types.Intent.Message(payload=payload))
        parameters = struct_pb2.Struct()
        parameters.update(intent.parameters or {})
        return types.QueryResult(
            query_text=text,
            language_code=query.text.language_code or query.event.language_code,
            action=intent.action,
            parameters=parameters,
            fulfillment_text=intent.texts[0] if intent.texts else "",
            fulfillment_messages=messages,
            intent=types.Intent(display_name=intent.name, is_fallback=intent.fallback),
            intent_detection_confidence=0.4 if intent.fallback else 0.9,
        )


@asynccontextmanager
async def serve() -> AsyncIterator[FakeDialogflow]:
    fake = FakeDialogflow()
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        fake.detect_intent,
        request_deserializer=types.DetectIntentRequest.deserialize,
        response_serializer=types.DetectIntentResponse.serialize,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"DetectIntent": handler}),)
    )
    fake.port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield fake
    finally:
        await server.stop(grace=None)
