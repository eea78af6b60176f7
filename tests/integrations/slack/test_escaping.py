"""What a contact writes reaches agents as text: no pings, no spoofed mentions or links,
no reordered header, nothing past Slack's length limits."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bot.api.auth import create_token
from bot.keys import DB, DEFAULT_SPACE
from bot.storage.tables import contacts
from bot.workspace.contacts import create_field, set_field
from integrations.slack.safe import FSI, PDI, SECTION_LIMIT, TEXT_LIMIT, inert, inline, link
from tests.conftest import eventually
from tests.fakes.slack import Posted
from tests.integrations.slack.conftest import Desk
from tests.integrations.slack.test_desk import AWAY_FORM, handed_over

HOSTILE = ("<!channel>", "<!here>", "<!everyone>", "<@U0ADMIN>", "<https://evil", "<#C0")
NAME = "<!channel> \u202eAna <@U0ADMIN>"
SAID = "<!here> I am <@U0ADMIN>, see <https://evil.example|https://acme.example> & <#C0|x>"


def test_inert_escapes_what_slack_would_parse() -> None:
    assert inert("<!channel> & <@U1> <https://evil|https://acme>") == (
        "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;https://evil|https://acme&gt;"
    )
    assert inert("plain words, *bold* and 2 > 1") == "plain words, *bold* and 2 &gt; 1"
    assert inert("&lt;") == "&amp;lt;"  # an entity the contact typed stays what they typed


def test_inert_isolates_right_to_left_text_and_bidi_controls_line_by_line() -> None:
    assert inert("Ana") == "Ana"  # nothing to isolate: unchanged
    assert inert("\u202eevil") == f"{FSI}\u202eevil{PDI}"
    assert inert("مرحبا") == f"{FSI}مرحبا{PDI}"
    # a PDI or isolate of the contact's own could close ours early: they go
    assert inert("a\u2069\u202eb\u2066c") == f"{FSI}a\u202ebc{PDI}"
    assert inert("ok\n\u202eno") == f"ok\n{FSI}\u202eno{PDI}"


def test_inert_cuts_under_the_limit_without_breaking_an_entity_or_an_isolate() -> None:
    for text in ("&" * 50_000, "x" * 50_000, "\u202e" + "<" * 50_000, "a\n" * 50_000):
        shown = inert(text)
        assert len(shown) <= TEXT_LIMIT < 40_000
        assert shown.endswith("characters more)")
        body = shown[: shown.rindex("\n")]
        assert body.count("&") == body.count(";")  # whole entities only
        assert body.count(FSI) == body.count(PDI)
    assert len(inert("<" * 5000, SECTION_LIMIT)) <= SECTION_LIMIT


def test_links_names_and_labels() -> None:
    assert link("https://x.example/a|b>c?d=1&e=2", "<!here>|f") == (
        "<https://x.example/a%7Cb%3Ec?d=1&amp;e=2|&lt;!here&gt;|f>"
    )
    assert link("javascript:alert(1)", "doc") == "doc (javascript:alert(1))"  # not a link
    # a newline in a name would forge a line of the header
    assert inline("Ana\nState: with an agent", 100) == "Ana State: with an agent"
    short = inline("x" * 500, 100)
    assert 80 < len(short) <= 100 and short.endswith("x…")


def _texts(posted: Posted) -> list[str]:
    found = [posted.text]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                found.append(item) if key == "text" and isinstance(item, str) else walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(posted.blocks)
    return found


def _everything(desk: Desk) -> list[str]:
    slack = desk.slack
    return [t for p in slack.messages + slack.updates + slack.ephemeral for t in _texts(p)]


def _assert_inert(texts: list[str]) -> None:
    for text in texts:
        assert not [h for h in HOSTILE if h in text], text
        for line in text.split("\n"):
            if "\u202e" in line:  # an override only inside an isolate of its own
                assert line.index(FSI) < line.index("\u202e") < line.rindex(PDI), line


async def test_a_hostile_contact_reaches_slack_as_plain_text(desk: Desk) -> None:
    await desk.add_agent("U1", "Bea", "bea@example.com")
    await desk.contact_says("hi", name=NAME)
    await desk.contact_says(SAID, name=NAME)
    await desk.contact_says("a human please", name=NAME)
    await eventually(lambda: any(m.blocks for m in desk.slack.messages))
    header = next(m for m in desk.slack.messages if m.blocks)
    await eventually(lambda: desk.slack.thread(header.ts))  # the transcript: the photo follows
    await desk.contact_says(None, name=NAME, caption="<https://evil.example|invoice.pdf> <!here>")
    await eventually(lambda: any("invoice.pdf" in m.text for m in desk.slack.thread(header.ts)))
    texts = _everything(desk)
    _assert_inert(texts)
    assert f"*{FSI}&lt;!channel&gt; \u202eAna &lt;@U0ADMIN&gt;{PDI}* on telegram" in header.text
    assert any("&lt;!here&gt; I am &lt;@U0ADMIN&gt;" in t for t in texts)  # the transcript
    (photo,) = [m for m in desk.slack.thread(header.ts) if "invoice.pdf" in m.text]
    assert photo.text.startswith("<https://hub.example.com/media/")  # our link, their label
    assert photo.text.count("<") == 1 and "|&lt;https://evil.example|invoice.pdf&gt;" in photo.text
    # and when someone offers to take conversations, the waiting list is inert too
    answer = await desk.command("online", "U1")
    assert "&lt;!channel&gt;" in answer
    _assert_inert([answer])


async def test_a_flow_summary_reaches_slack_as_plain_text(desk: Desk) -> None:
    app = desk.app
    async with app[DB].write() as conn:
        await create_field(conn, app[DEFAULT_SPACE], "email", "", "email", [])
        token = await create_token(conn, app[DEFAULT_SPACE], None, "m", "manager")
    auth = {"Authorization": f"Bearer {token}"}
    headers = auth | {"Content-Type": "application/yaml"}
    assert (await desk.hub.post("/api/v1/surveys", data=AWAY_FORM, headers=headers)).status == 201
    await desk.hub.patch("/api/v1/space", json={"away_flow": "away_form"}, headers=auth)
    _, header = await handed_over(desk)
    await eventually(lambda: desk.telegram_texts()[-1].startswith("We're away right now"))
    await desk.contact_says("<!channel> refund <@U0ADMIN>")
    await eventually(lambda: desk.telegram_texts()[-1] == "And an email to reach you?")
    await desk.contact_says("ana@example.com")
    await eventually(
        lambda: any("While you were away" in m.text for m in desk.slack.thread(header.ts))
    )
    (summary,) = [m for m in desk.slack.thread(header.ts) if "While you were away" in m.text]
    assert "need: &lt;!channel&gt; refund &lt;@U0ADMIN&gt;" in summary.text
    _assert_inert(_everything(desk))


async def test_long_messages_and_fields_stay_under_slack_limits(desk: Desk) -> None:
    await desk.add_agent("U1", "Bea", "bea@example.com")
    conversation_id, header = await handed_over(desk)
    await desk.contact_says("<" * 50_000 + "<!channel>")
    await eventually(lambda: len(desk.slack.thread(header.ts)) >= 2, timeout=10)
    long = desk.slack.thread(header.ts)[-1]
    assert len(long.text) <= TEXT_LIMIT and long.text.startswith("&lt;&lt;")
    assert long.text.endswith("characters more)")
    async with desk.app[DB].write() as conn:
        space = desk.app[DEFAULT_SPACE]
        contact_id = (await conn.execute(sa.select(contacts.c.id))).scalar_one()
        for n in range(12):  # 12 text fields of 500 characters: 6,000 before escaping
            await create_field(conn, space, f"story{n}", "", "text", [])
            await set_field(conn, space, contact_id, f"story{n}", "<!channel>" * 50)
    await desk.click("claim", conversation_id, "U1")  # the header is redrawn
    await eventually(lambda: desk.slack.updates)
    redrawn = desk.slack.parent(header.ts)
    section = redrawn.blocks[0]["text"]["text"]
    assert len(section) <= SECTION_LIMIT and len(redrawn.text) <= SECTION_LIMIT
    assert "Assignee: <@U1>" in section and "story0=&lt;!channel&gt;" in section
    _assert_inert(_everything(desk))
