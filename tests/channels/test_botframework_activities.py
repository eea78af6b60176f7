"""Bot Framework activities to unified events and back, without a server: the pure
`channels.botframework_activities` on activities built as Teams sends them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botbuilder.schema import Activity, ConversationReference

from bot.errors import NotFound
from bot.model import (
    ContactBlocked,
    MediaPart,
    MessageReceived,
    Outbound,
    Postback,
    QuickRepliesPart,
    QuickReply,
    Reaction,
    TextPart,
)
from channels.botframework_activities import (
    CAPABILITIES,
    HERO_CARD,
    TEAMS_FILE,
    escape,
    events_of,
    media_id_of,
    message_key,
    needs_token,
    reference_of,
    render,
    sender_of,
    url_of,
)
from tests.fakes.botframework import (
    conversation_update,
    installation_update,
    mention,
    message_reaction,
    teams_activity,
)

APP = "app-1"
BOT = "28:" + APP
SERVICE = "https://smba.example.com/emea/"
USER = "29:1GcS4EyB_oSI8A88XmWBN7NJFyMqe3QGnJdgLfFGkJnVelzRGos0bPbpsfJjcbAD22bm"
CONVERSATION = "a:1personal-chat-with-megan-bowen"
TENANT = "tenant-1"
ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def activity(kind: str = "message", **kw: Any) -> Activity:
    """A Teams activity of that kind, deserialized as the SDK reads the posted JSON."""
    return Activity().deserialize(teams_activity(kind, app_id=APP, service_url=SERVICE, **kw))


def parsed(d: dict[str, Any]) -> Activity:
    return Activity().deserialize(d)


def only_message(a: Activity) -> MessageReceived:
    events = events_of(a)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, MessageReceived)
    return event


def reference(channel: str = "msteams") -> ConversationReference:
    """Where a contact last wrote from, read back from their stored address."""
    extra = {} if channel == "msteams" else {"channelId": channel}
    address = sender_of(activity(**extra)).address
    assert address is not None
    return reference_of(address)


def outbound(*parts: Any, sender_name: str | None = None) -> Outbound:
    return Outbound(
        message_id=1,
        conversation_id=1,
        recipient="msteams:" + USER,
        parts=parts,
        sender_name=sender_name,
    )


def replies(n: int) -> QuickRepliesPart:
    return QuickRepliesPart(
        replies=tuple(QuickReply(title=f"Option {i}", payload=f"P{i}") for i in range(1, n + 1))
    )


# --- in: messages ------------------------------------------------------------------------


def test_a_message_gives_its_text_and_sender() -> None:
    a = activity(text="hello there", activity_id="1700000000001")
    event = only_message(a)
    assert event.parts == (TextPart(text="hello there"),)
    assert event.external_id == message_key(CONVERSATION, "1700000000001")
    sender = event.sender
    assert sender.external_id == "msteams:" + USER
    assert sender.name == "Megan Bowen"
    assert sender.language == "en-US"


def test_the_address_reads_back_as_a_reference_to_the_conversation() -> None:
    sender = only_message(activity(activity_id="1700000000002")).sender
    assert sender.address is not None
    ref = reference_of(sender.address)
    assert isinstance(ref, ConversationReference)
    assert ref.service_url == SERVICE
    assert ref.channel_id == "msteams"
    assert ref.conversation.id == CONVERSATION
    assert ref.conversation.tenant_id == TENANT
    assert ref.bot.id == BOT
    assert ref.user.id == USER
    assert ref.user.name == "Megan Bowen"
    assert ref.activity_id is None


def test_the_tenant_comes_from_channel_data() -> None:
    d = teams_activity(
        app_id=APP, service_url=SERVICE, tenant_id="tenant-from-channel-data", text="hi"
    )
    d["conversation"].pop("tenantId")
    address = sender_of(parsed(d)).address
    assert address is not None
    assert reference_of(address).conversation.tenant_id == "tenant-from-channel-data"


def test_two_messages_from_one_person_give_the_same_address() -> None:
    first = only_message(activity(text="one", activity_id="1700000000003"))
    second = only_message(activity(text="two", activity_id="1700000000004"))
    assert first.external_id != second.external_id
    assert first.sender.address == second.sender.address


def test_message_key_qualifies_the_id_by_its_conversation() -> None:
    assert message_key("a:1one", "1700000000005") != message_key("a:1two", "1700000000005")
    assert message_key("a:1one", "1700000000005") == message_key("a:1one", "1700000000005")
    assert message_key("a:1one", "1700000000005") != message_key("a:1one", "1700000000006")
    long = "x" * 300
    key = message_key("19:channel@thread.tacv2;messageid=1", long)
    assert len(key) <= 128
    assert key != message_key("19:channel@thread.tacv2;messageid=1", long + "y")


def test_the_bots_mention_is_stripped_and_the_rest_kept() -> None:
    text, entity = mention("what's the weather?", APP)
    event = only_message(activity(text=text, entities=[entity], conversation_type="groupChat"))
    assert event.parts == (TextPart(text="what's the weather?"),)


def test_another_persons_mention_is_kept() -> None:
    other = {
        "type": "mention",
        "mentioned": {"id": "29:adele", "name": "Adele Vance"},
        "text": "<at>Adele Vance</at>",
    }
    text, entity = mention("ask <at>Adele Vance</at> please", APP)
    event = only_message(activity(text=text, entities=[entity, other]))
    assert event.parts == (TextPart(text="ask <at>Adele Vance</at> please"),)


def test_the_bots_name_in_the_text_is_not_its_mention() -> None:
    text, entity = mention("is Acme Bot online?", APP)
    event = only_message(activity(text=text, entities=[entity]))
    assert event.parts == (TextPart(text="is Acme Bot online?"),)


def test_a_mention_alone_makes_no_event() -> None:
    text, entity = mention("", APP)
    assert events_of(activity(text=text, entities=[entity])) == []


# --- in: attachments ------------------------------------------------------------------


def test_an_image_becomes_a_media_part() -> None:
    """A picture on a public host (as Web Chat sends them) stays a link."""
    image = {
        "contentType": "image/png",
        "contentUrl": "https://cdn.example.com/photos/photo.png",
        "name": "photo.png",
    }
    event = only_message(activity(text="look", attachments=[image]))
    assert event.parts == (
        TextPart(text="look"),
        MediaPart(
            type="image",
            url="https://cdn.example.com/photos/photo.png",
            mime_type="image/png",
            name="photo.png",
        ),
    )


def test_a_picture_kept_by_microsoft_becomes_a_media_id_the_hub_fetches() -> None:
    kept = "https://smba.trafficmanager.net/emea/v3/attachments/0-x/views/original"
    image = {"contentType": "image/png", "contentUrl": kept}
    (part,) = only_message(activity(text=None, attachments=[image])).parts
    assert isinstance(part, MediaPart)
    assert (part.url, part.media_id) == (None, media_id_of(kept))
    assert url_of(media_id_of(kept)) == kept
    with pytest.raises(NotFound):
        url_of("%%%")


@pytest.mark.parametrize(
    ("url", "token"),
    [
        ("https://smba.trafficmanager.net/amer/v3/attachments/1/views/original", True),
        ("https://us-api.asm.skype.com/v1/objects/0-wus-d1-1/views/imgo", True),
        ("https://connector.example/bot/v3/attachments/1/views/original", True),  # its own
        ("http://us-api.asm.skype.com/v1/objects/1/views/imgo", False),  # not https
        ("https://smba.trafficmanager.net.evil.example/v3/attachments/1", False),
        ("https://evilasm.skype.com/v1/objects/1", False),
        ("https://connector.example/bot-not/v3/attachments/1", False),
        ("https://example.com/cat.png?u=https://us-api.asm.skype.com/", False),
    ],
)
def test_only_microsofts_stores_are_sent_the_bots_token(url: str, token: bool) -> None:
    assert needs_token(url, "https://connector.example/bot/") is token


def test_teams_html_copy_of_the_text_is_ignored() -> None:
    copy = {"contentType": "text/html", "content": "<div><div>look</div></div>"}
    event = only_message(activity(text="look", attachments=[copy]))
    assert event.parts == (TextPart(text="look"),)


def test_a_text_file_with_a_url_is_a_file_part() -> None:
    """Only Teams' HTML copy is dropped: a .txt sent in Web Chat is the contact's file."""
    notes = {"contentType": "text/plain", "contentUrl": "https://x.example/n.txt", "name": "n.txt"}
    (part,) = only_message(activity(text=None, attachments=[notes])).parts
    assert isinstance(part, MediaPart)
    assert (part.type, part.url, part.mime_type) == ("file", notes["contentUrl"], "text/plain")


def test_a_teams_file_becomes_a_file_part_by_its_download_url() -> None:
    file = {
        "contentType": TEAMS_FILE,
        "contentUrl": "https://contoso.sharepoint.com/personal/megan/Documents/report.pdf",
        "name": "report.pdf",
        "content": {
            "downloadUrl": "https://contoso.sharepoint.com/download.aspx?tempauth=xyz",
            "uniqueId": "1150D938-8870-4044-9F2C-5BBDEBA70C8C",
            "fileType": "pdf",
        },
    }
    event = only_message(activity(text=None, attachments=[file]))
    assert len(event.parts) == 1
    part = event.parts[0]
    assert isinstance(part, MediaPart)
    assert part.type == "file"
    assert part.url == "https://contoso.sharepoint.com/download.aspx?tempauth=xyz"
    assert part.name == "report.pdf"


def test_an_adaptive_card_without_a_url_is_ignored() -> None:
    card = {"contentType": ADAPTIVE, "content": {"type": "AdaptiveCard", "body": []}}
    event = only_message(activity(text="with a card", attachments=[card]))
    assert event.parts == (TextPart(text="with a card"),)


def test_no_text_and_nothing_usable_makes_no_event() -> None:
    card = {"contentType": ADAPTIVE, "content": {"type": "AdaptiveCard", "body": []}}
    html = {"contentType": "text/html", "content": "<p></p>"}
    assert events_of(activity(text=None, attachments=[card, html])) == []
    assert events_of(activity(text="   ")) == []


# --- in: buttons ---------------------------------------------------------------------


def test_a_message_back_button_is_a_postback_with_its_payload() -> None:
    a = activity(text="Yes", value={"payload": "YES"}, activity_id="1700000000010")
    events = events_of(a)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Postback)
    assert event.payload == "YES"
    assert event.title == "Yes"
    assert event.external_id == message_key(CONVERSATION, "1700000000010")
    assert event.sender == sender_of(a)


def test_an_adaptive_card_submit_is_a_postback_of_its_data_as_json() -> None:
    a = activity(text=None, value={"n": 2, "choice": "b"})
    events = events_of(a)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Postback)
    assert event.payload == '{"choice": "b", "n": 2}'
    assert json.loads(event.payload) == {"choice": "b", "n": 2}
    assert event.title is None


# --- in: membership and installation -------------------------------------------------


def test_the_bot_added_to_a_conversation_says_welcome() -> None:
    a = parsed(conversation_update(app_id=APP, service_url=SERVICE))
    events = events_of(a)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Postback)
    assert event.payload == "event:WELCOME"
    assert event.sender.external_id == "msteams:" + USER
    assert event.sender.address is not None
    assert reference_of(event.sender.address).conversation.id == CONVERSATION


def test_someone_else_added_makes_no_event() -> None:
    d = conversation_update(app_id=APP, service_url=SERVICE, conversation_type="groupChat")
    d["membersAdded"] = [{"id": "29:adele", "name": "Adele Vance"}]
    assert events_of(parsed(d)) == []


def test_the_bot_removed_blocks_the_contact() -> None:
    d = conversation_update(app_id=APP, service_url=SERVICE)
    d["membersRemoved"] = d.pop("membersAdded")
    events = events_of(parsed(d))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ContactBlocked)
    assert event.blocked is True
    assert event.sender.external_id == "msteams:" + USER


@pytest.mark.parametrize(
    ("action", "blocked"), [("add", False), ("add-upgrade", False), ("remove", True)]
)
def test_installation_updates_block_or_unblock(action: str, blocked: bool) -> None:
    a = parsed(installation_update(action, app_id=APP, service_url=SERVICE))
    events = events_of(a)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ContactBlocked)
    assert event.blocked is blocked
    assert event.sender.external_id == "msteams:" + USER


# --- in: reactions and the rest ---------------------------------------------------------


def reactions(reply_to: str, kind: str = "like", *, removed: bool = False) -> list[Reaction]:
    d = message_reaction(reply_to, kind, removed=removed, app_id=APP, service_url=SERVICE)
    events = events_of(parsed(d))
    assert all(isinstance(e, Reaction) for e in events)
    return events  # type: ignore[return-value]


def test_a_like_is_a_thumbs_up_on_that_message() -> None:
    [reaction] = reactions("1700000000020")
    assert reaction.emoji == "👍"
    assert reaction.to_external_id == message_key(CONVERSATION, "1700000000020")
    assert reaction.sender.external_id == "msteams:" + USER


def test_a_removed_reaction_has_no_emoji() -> None:
    [reaction] = reactions("1700000000021", "heart", removed=True)
    assert reaction.emoji == ""
    assert reaction.to_external_id == message_key(CONVERSATION, "1700000000021")


def test_an_unknown_reaction_keeps_its_name() -> None:
    [reaction] = reactions("1700000000022", "fistbump")
    assert reaction.emoji == "fistbump"


@pytest.mark.parametrize("kind", ["typing", "event", "invoke"])
def test_other_activities_make_no_event(kind: str) -> None:
    extra: dict[str, Any] = {"name": "application/vnd.microsoft.meetingStart"}
    assert events_of(activity(kind, **(extra if kind != "typing" else {}))) == []


# --- out: escaping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("*bold*", r"\*bold\*"),
        ("_it_", r"\_it\_"),
        ("`code`", r"\`code\`"),
        ("~gone~", r"\~gone\~"),
        ("#1 fan", r"\#1 fan"),
        ("[link](x)", r"\[link\](x)"),
        ("a|b", r"a\|b"),
        ("C:\\dir", "C:\\\\dir"),
        ("<b>&</b>", "&lt;b&gt;&amp;&lt;/b&gt;"),
        ("- one", r"\- one"),
        ("+ one", r"\+ one"),
        ("1. one", r"1\. one"),
        ("intro\n- one\n  12. two", "intro\n\\- one\n  12\\. two"),
        ("10-20 (approx)!", "10-20 (approx)!"),
        ("a - b + c 3. d", "a - b + c 3. d"),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


# --- out: rendering --------------------------------------------------------------------


def test_render_addresses_from_the_bot_to_the_user() -> None:
    [made] = render(outbound(TextPart(text="hello")), reference())
    assert made.type == "message"
    assert made.text == "hello"
    assert made.from_property.id == BOT
    assert made.recipient.id == USER
    assert made.conversation.id == CONVERSATION
    assert made.service_url == SERVICE
    assert made.channel_id == "msteams"
    assert made.reply_to_id is None
    assert made.channel_data == {"tenant": {"id": TENANT}}


def test_render_escapes_the_text() -> None:
    [made] = render(outbound(TextPart(text="2*3 <= 7")), reference())
    assert made.text == r"2\*3 &lt;= 7"


def test_teams_quick_replies_become_a_hero_card() -> None:
    ref = reference()
    quick = QuickRepliesPart(
        replies=(QuickReply(title="Yes", payload="Y"), QuickReply(title="No", payload="N"))
    )
    [made] = render(outbound(TextPart(text="Pick one"), quick), ref)
    assert made.text is None
    assert made.suggested_actions is None
    [card] = made.attachments
    assert card.content_type == HERO_CARD
    assert card.content["text"] == "Pick one"
    buttons = card.content["buttons"]
    assert [b["type"] for b in buttons] == ["messageBack", "messageBack"]
    assert [b["title"] for b in buttons] == ["Yes", "No"]
    assert [b["value"] for b in buttons] == [{"payload": "Y"}, {"payload": "N"}]


def test_webchat_quick_replies_are_suggested_actions() -> None:
    ref = reference("webchat")
    assert ref.channel_id == "webchat"
    quick = QuickRepliesPart(
        replies=(QuickReply(title="Yes", payload="Y"), QuickReply(title="No", payload="N"))
    )
    [made] = render(outbound(TextPart(text="Pick one"), quick), ref)
    assert made.channel_id == "webchat"
    assert made.text == "Pick one"
    assert made.channel_data is None
    assert not made.attachments
    actions = made.suggested_actions.actions
    assert [a.type for a in actions] == ["postBack", "postBack"]
    assert [a.title for a in actions] == ["Yes", "No"]
    assert [a.value for a in actions] == [{"payload": "Y"}, {"payload": "N"}]


@pytest.mark.parametrize("channel", ["msteams", "webchat"])
def test_more_than_six_quick_replies_degrade_to_a_numbered_list(channel: str) -> None:
    [made] = render(outbound(TextPart(text="Pick one"), replies(7)), reference(channel))
    assert made.text is not None
    assert made.text.startswith("Pick one\n\n1\\. Option 1\n2\\. Option 2\n")
    assert made.text.endswith("7\\. Option 7")
    assert not made.attachments
    assert made.suggested_actions is None


def test_six_quick_replies_are_still_buttons() -> None:
    [made] = render(outbound(TextPart(text="Pick one"), replies(6)), reference("webchat"))
    assert len(made.suggested_actions.actions) == 6
    assert made.text == "Pick one"


def test_a_media_part_is_an_attachment_and_its_caption_joins_the_text() -> None:
    picture = MediaPart(
        type="image",
        url="https://cdn.example.com/p.png",
        mime_type="image/png",
        name="p.png",
        caption="the view",
    )
    [made] = render(outbound(TextPart(text="look"), picture), reference())
    assert made.text == "look\n\nthe view"
    [attachment] = made.attachments
    assert attachment.content_url == "https://cdn.example.com/p.png"
    assert attachment.content_type == "image/png"
    assert attachment.name == "p.png"


def test_a_media_part_without_a_mime_type_gets_a_generic_one() -> None:
    [made] = render(outbound(MediaPart(type="file", url="https://cdn.example.com/f")), reference())
    assert made.text is None
    [attachment] = made.attachments
    assert attachment.content_url == "https://cdn.example.com/f"
    assert attachment.content_type == "application/octet-stream"


def test_the_agents_name_goes_before_the_first_text() -> None:
    message = outbound(TextPart(text="hi"), TextPart(text="there"), sender_name="Ana_Lima")
    [made] = render(message, reference())
    assert made.text == "**Ana\\_Lima**: hi\n\nthere"


def test_a_long_text_is_split_with_the_buttons_on_the_last() -> None:
    words = "lorem " * (CAPABILITIES.text_limit // 3)
    quick = QuickRepliesPart(replies=(QuickReply(title="More", payload="MORE"),))
    made = render(outbound(TextPart(text=words), quick), reference("webchat"))
    assert len(made) > 1
    assert all(a.text and len(a.text) <= CAPABILITIES.text_limit for a in made)
    assert " ".join(a.text for a in made).split() == words.split()
    assert all(a.suggested_actions is None for a in made[:-1])
    assert [b.value for b in made[-1].suggested_actions.actions] == [{"payload": "MORE"}]


def test_a_long_text_in_teams_puts_the_card_on_the_last() -> None:
    words = "lorem " * (CAPABILITIES.text_limit // 3)
    quick = QuickRepliesPart(replies=(QuickReply(title="More", payload="MORE"),))
    made = render(outbound(TextPart(text=words), quick), reference())
    assert len(made) > 1
    assert all(a.text and not a.attachments for a in made[:-1])
    last = made[-1]
    assert last.text is None
    [card] = last.attachments
    assert card.content_type == HERO_CARD
    texts = [a.text for a in made[:-1]] + [card.content["text"]]
    assert " ".join(texts).split() == words.split()
    assert all(a.channel_data == {"tenant": {"id": TENANT}} for a in made)
