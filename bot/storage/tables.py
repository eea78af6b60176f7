"""The schema, as SQLAlchemy Core tables (the Alembic migrations create the same)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

NOW = text("CURRENT_TIMESTAMP")


def _created() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW)


def _retries() -> tuple[Column[object], ...]:
    """An outbox row's delivery state: tried how often, when next, and why it failed."""
    return (
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=NOW),
        Column("last_error", Text),
    )


organizations = Table(
    "organizations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    _created(),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("availability", String(16), nullable=False, server_default="offline"),
    Column("slack_user_id", String(64)),
    _created(),
    Column("password_hash", String(200)),  # argon2, for the dashboard; unset: no login
)

# A signed-in browser of the dashboard: its cookie carries the token whose hash is the
# id, so signing out (here, or everywhere) ends it even where the cookie was copied.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie's token
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    _created(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("address", String(64)),  # where it signed in from, and with what
    Column("agent", String(200)),
)

organization_members = Table(
    "organization_members",
    metadata,
    Column("organization_id", ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # admin | billing_admin | member
)

spaces = Table(
    "spaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("organization_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("is_default", Integer, nullable=False, server_default="0"),
    # {"days": {"mon": ["09:00", "18:00"], ...}, "holidays": ["2026-12-25"],
    #  "away_text": "...", "away_every_minutes": 720, "handover_keywords": {"en": [...]}}
    Column("settings", JSON, nullable=False, default=dict, server_default="{}"),
    # bumped by every change to the space's automations (or what they refer to): the worker
    # reads it with each conversation's state and recompiles only when it moved
    Column("automations_version", Integer, nullable=False, server_default="0"),
    _created(),
)

space_members = Table(
    "space_members",
    metadata,
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),  # manager | agent
    Column("capacity", Integer),  # most open conversations at once; null: no limit
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL")),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 hex of the token
    Column("role", String(16), nullable=False),
    _created(),
    Column("revoked_at", DateTime(timezone=True)),
)

# Someone who already has an account elsewhere joins an organization (space_id null) or a
# space only by accepting, with a token of their own and the code shown once to the inviter.
invitations = Table(
    "invitations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("organization_id", ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE")),
    Column("email", String(320), nullable=False),
    Column("role", String(16), nullable=False),  # the space's role, else the organization's
    Column("code_hash", String(64), nullable=False, unique=True),  # sha256 hex of the code
    Column("invited_by", ForeignKey("users.id", ondelete="SET NULL")),
    _created(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("accepted_at", DateTime(timezone=True)),
    Index("ix_invitations_organization_space", "organization_id", "space_id"),
)

channels = Table(
    "channels",
    metadata,
    Column("id", String(32), primary_key=True),  # appears in webhook URLs
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("credentials", Text),  # encrypted JSON, never returned by the API
    Column("settings", JSON, nullable=False, default=dict),
    _created(),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200)),
    Column("language", String(16)),
    Column("phone", String(32)),
    Column("email", String(320)),
    Column("avatar_url", Text),
    Column("status", String(16), nullable=False, server_default="open"),  # open | closed
    Column("assignee_id", ForeignKey("users.id", ondelete="SET NULL")),
    Column("team_id", Integer),
    # set when merged into another contact: hidden from lists, kept so the merge can be undone
    Column("merged_into_id", ForeignKey("contacts.id", ondelete="SET NULL")),
    _created(),
    Column("last_message_at", DateTime(timezone=True)),
    # the contact sent an opt-out keyword (STOP): no broadcast reaches them until START
    Column("unsubscribed_at", DateTime(timezone=True)),
    # views sort newest first and filter on these within a space
    # pages walk it newest first; counts read it alone (no row lookups): both filter
    # `space_id = ? AND merged_into_id IS NULL`
    Index("ix_contacts_space_listed", "space_id", "merged_into_id", "id"),
    Index("ix_contacts_space_last_message", "space_id", "last_message_at"),
    Index("ix_contacts_space_created", "space_id", "created_at"),
    Index("ix_contacts_space_name", "space_id", "name"),
    Index("ix_contacts_space_phone", "space_id", "phone"),
    Index("ix_contacts_space_email", "space_id", "email"),
)

identities = Table(
    "identities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("blocked", Integer, nullable=False, server_default="0"),  # the contact blocked us
    # the channel's JSON saying how to reach them when the id does not (Bot Framework's
    # conversation reference); text, so "changed?" is a plain comparison on both databases
    Column("address", Text),
    UniqueConstraint("channel_id", "external_id", name="uq_identities_channel_external"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("identity_id", ForeignKey("identities.id", ondelete="CASCADE"), nullable=False),
    # bot | flow | waiting (handed over, nobody claimed) | agent
    Column("handler", String(8), nullable=False, server_default="bot"),
    Column("status", String(8), nullable=False, server_default="open"),  # open | closed
    Column("assignee_id", ForeignKey("users.id", ondelete="SET NULL")),
    _created(),
    Column("last_message_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("bot_fallbacks", Integer, nullable=False, server_default="0"),  # in a row
    Column(
        "team_id", ForeignKey("teams.id", ondelete="SET NULL", name="fk_conversations_team")
    ),  # the queue while waiting
    Column("away_sent_at", DateTime(timezone=True)),
    # set once, for the reports: when a person first took part (assigned, handed over or
    # wrote), and when a person first wrote to the contact
    Column("handed_over_at", DateTime(timezone=True)),
    Column("first_reply_at", DateTime(timezone=True)),
    # the inbox walks it backwards (latest activity first); reports read ranges of days
    Index("ix_conversations_space_recent", "space_id", "last_message_at", "id"),
    Index("ix_conversations_space_created", "space_id", "created_at"),
    Index("ix_conversations_space_closed", "space_id", "closed_at"),
    # a contact's history on one channel: broadcasts find where to write and who answered
    Index("ix_conversations_identity", "identity_id"),
    # at most one open conversation per identity: get-or-open relies on it
    Index(
        "uq_conversations_open_identity",
        "identity_id",
        unique=True,
        sqlite_where=text("status = 'open'"),
        postgresql_where=text("status = 'open'"),
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    # in | out | note (internal: never sent to the contact)
    Column("direction", String(4), nullable=False),
    # the platform's message id: a redelivered webhook hits the unique constraint
    Column("external_id", String(128)),
    # outbound only: "<inbound message id>:<n>" so a re-run handler writes nothing twice
    Column("dedupe_key", String(64), unique=True),
    Column("reply_to_id", ForeignKey("messages.id", ondelete="SET NULL")),
    Column("parts", JSON, nullable=False),
    # in: received | out: pending, sent, delivered, read, failed
    Column("status", String(12), nullable=False),
    Column("error", Text),
    Column("sender_user_id", ForeignKey("users.id", ondelete="SET NULL")),
    # contact | user | bot | flow | automation | broadcast | unknown (outbound before 0006)
    Column("sender_type", String(12), nullable=False, server_default="unknown"),
    # user/automation/broadcast id; bot: "builtin" or the integration id; flow: survey id or "away"
    Column("sender_id", String(64)),
    _created(),
    UniqueConstraint("channel_id", "external_id", name="uq_messages_channel_external"),
    Index("ix_messages_conversation", "conversation_id", "id"),
    Index("ix_messages_channel_status", "channel_id", "status", "id"),  # a channel's health
    Index("ix_messages_space_created", "space_id", "created_at"),  # reports' ranges of days
    # reports per person: their messages in a range, read from the index alone
    Index(
        "ix_messages_people_out",
        "space_id",
        "created_at",
        "sender_user_id",
        "conversation_id",
        sqlite_where=text("direction = 'out' AND sender_user_id IS NOT NULL"),
        postgresql_where=text("direction = 'out' AND sender_user_id IS NOT NULL"),
    ),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "message_id", ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    # the message's: whether a conversation owes a send is one index probe
    Column(
        "conversation_id",
        ForeignKey("conversations.id", ondelete="CASCADE", name="fk_outbox_conversation_id"),
        nullable=False,
    ),
    *_retries(),
    Index("ix_outbox_conversation", "conversation_id", "id"),
    Index("ix_outbox_due", "next_attempt_at"),  # when the next retry is due
)

# The work queue's durable copy: a row per event waiting for the handlers.
work_items = Table(
    "work_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(8), nullable=False, server_default="pending"),  # pending | dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    _created(),
    Index("ix_work_items_status_conversation", "status", "conversation_id", "id"),
)

# A person's own chat account linked to their user: admin commands are accepted from it.
user_identities = Table(
    "user_identities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("external_id", String(128), nullable=False),
    UniqueConstraint("channel_id", "external_id", name="uq_user_identities_channel_external"),
)

# One-time codes printed by `chancenter users link`, sent back as `/link CODE`.
link_codes = Table(
    "link_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Custom fields: a typed definition per space, one row per contact and field whose value sits
# in the column of its type, so comparisons use an index instead of parsing text.
field_definitions = Table(
    "field_definitions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(64), nullable=False),
    Column("label", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("options", JSON, nullable=False, default=list),  # choices, for type "choice"
    UniqueConstraint("space_id", "key", name="uq_field_definitions_space_key"),
)

field_values = Table(
    "field_values",
    metadata,
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("field_id", ForeignKey("field_definitions.id", ondelete="CASCADE"), primary_key=True),
    Column("value_text", String(500)),
    Column("value_number", Float),
    Column("value_date", DateTime(timezone=True)),
    Index("ix_field_values_text", "field_id", "value_text", "contact_id"),
    Index("ix_field_values_number", "field_id", "value_number", "contact_id"),
    Index("ix_field_values_date", "field_id", "value_date", "contact_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    UniqueConstraint("space_id", "name", name="uq_tags_space_name"),
)

contact_tags = Table(
    "contact_tags",
    metadata,
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_contact_tags_contact", "contact_id"),
)

# Saved filters over contacts; user_id set: personal, else shared with the space.
views = Table(
    "views",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE")),
    Column("name", String(200), nullable=False),
    Column("filter", JSON, nullable=False),
    _created(),
)

# Message templates; user_id set: personal, else shared with the space.
shortcuts = Table(
    "shortcuts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE")),
    Column("name", String(100), nullable=False),
    Column("text", Text, nullable=False),
    Column("quick_replies", JSON, nullable=False, default=list),
    Column("attachment_url", Text),
    _created(),
)

# What privacy requests did, kept after the personal data is gone.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL")),
    Column("action", String(32), nullable=False),
    Column("subject", String(64), nullable=False),  # e.g. "contact:42"
    Column("detail", JSON, nullable=False, default=dict),
    _created(),
)

# Each merge, with what it moved, so it can be undone exactly.
contact_merges = Table(
    "contact_merges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("survivor_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("merged_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("moved", JSON, nullable=False),
    _created(),
    Column("undone_at", DateTime(timezone=True)),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("slack_channel", String(32)),  # the team's own inbox; null: the space's
    UniqueConstraint("space_id", "name", name="uq_teams_space_name"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


# A space's messages per local day, channel and direction, for the days that have ended
# (`bot.workspace.report_days`); `report_books` says how far, in which time zone.
report_days = Table(
    "report_days",
    metadata,
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
    Column("direction", String(4), primary_key=True),
    Column("messages", Integer, nullable=False),
)

report_books = Table(
    "report_books",
    metadata,
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), primary_key=True),
    Column("timezone", String(64), nullable=False),  # the days were cut in it
    Column("through", Date),  # the last day counted; null: none yet
)


# Who was given each conversation, by whom, when (assignments and claims).
assignments = Table(
    "assignments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", ForeignKey("users.id", ondelete="SET NULL")),  # null: unassigned
    Column("by_user_id", ForeignKey("users.id", ondelete="SET NULL")),  # null: the hub
    _created(),
    Index("ix_assignments_conversation", "conversation_id"),
)

# What the agent desk (Slack) must be told, written with the change that caused it and
# drained by the desk relay with retries: a Slack outage delays a thread, never drops it.
desk_outbox = Table(
    "desk_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # handover | message | state
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE")),
    Column("note", Text),
    *_retries(),
)

# A conversation's Slack thread.
slack_threads = Table(
    "slack_threads",
    metadata,
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True),
    Column("slack_channel", String(32), nullable=False),
    Column("ts", String(32), nullable=False),
    UniqueConstraint("slack_channel", "ts", name="uq_slack_threads_channel_ts"),
)

# A Slack OAuth install under way: the state slack-bolt sends to Slack, for one space.
slack_oauth_states = Table(
    "slack_oauth_states",
    metadata,
    Column("state", String(64), primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# A space's connection to a third-party product (its own Dialogflow agent, ...).
integrations = Table(
    "integrations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),  # dialogflow | slack
    Column("settings", JSON, nullable=False, default=dict),
    Column("credentials", Text),  # encrypted JSON, never returned by the API
    Column("error", Text),  # the last failure, for admins; null while it works
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    UniqueConstraint("space_id", "kind", name="uq_integrations_space_kind"),
)

# Surveys (flows) of a space, as validated definitions.
surveys = Table(
    "surveys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("definition", JSON, nullable=False),
    _created(),
    UniqueConstraint("space_id", "name", name="uq_surveys_space_name"),
)

# One survey running (or run) in one conversation: where it is and what was answered.
flow_runs = Table(
    "flow_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("survey_id", ForeignKey("surveys.id", ondelete="CASCADE"), nullable=False),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    # sent (asked, no answer yet) | in_progress | completed | expired | stopped
    Column("status", String(12), nullable=False),
    Column("step", String(64)),  # the question waiting for its answer
    Column("answers", JSON, nullable=False, default=dict),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("return_to", String(8), nullable=False, server_default="bot"),  # handler afterwards
    Column("reminded_at", DateTime(timezone=True)),
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("finished_at", DateTime(timezone=True)),
    Index("ix_flow_runs_conversation_status", "conversation_id", "status"),
    Index("ix_flow_runs_survey", "survey_id", "id"),
    # the clock looks for runs left waiting
    Index("ix_flow_runs_status_updated", "status", "updated_at"),
)

# Outgoing webhooks: a space's subscription to its events (a URL, the event types it
# hears or `*`, its `whsec_` signing secret, encrypted).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", Text),
    Column("events", JSON, nullable=False),
    Column("secret", Text, nullable=False),
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("disabled_reason", Text),  # why the relay switched it off (failing for a day)
    Column("failing_since", DateTime(timezone=True)),  # the first failure since a success
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Index("ix_webhooks_space", "space_id"),
)

# What happened, written in the commit that made it happen; the relay turns each into a
# delivery per subscription that hears it, and deletes it.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("conversation_id", Integer),  # the order key; none for a broadcast's end
    Column("data", JSON, nullable=False),
    _created(),
)

# One event (or a flow's or automation's own POST to `url`) owed to one receiver, kept
# with its attempts after it is delivered, so admins can read and replay it. `lane`
# orders a receiver's deliveries of one conversation; `message_id` is the `webhook-id`,
# the same on every retry.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("webhook_id", ForeignKey("webhooks.id", ondelete="CASCADE")),
    Column("url", Text),  # a flow's or automation's own target (no subscription)
    Column("message_id", String(40), nullable=False),
    Column("type", String(40), nullable=False),
    Column("conversation_id", Integer),
    Column("lane", String(64)),
    Column("body", JSON, nullable=False),
    Column("status", String(10), nullable=False, server_default="pending"),  # delivered | failed
    *_retries(),
    # every attempt: {"at", "status" (none without an answer), "ms", "error", "response"}
    Column("log", JSON, nullable=False, default=list),
    Column("give_up_at", DateTime(timezone=True), nullable=False),
    _created(),
    Column("finished_at", DateTime(timezone=True)),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
    Index("ix_webhook_deliveries_lane", "lane", "id"),
)

# Automations: a trigger, conditions and actions (the validated definition), per space.
automations = Table(
    "automations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("trigger", String(32), nullable=False),  # the definition's `trigger.on`
    Column("definition", JSON, nullable=False),
    Column("enabled", Integer, nullable=False, server_default="1"),
    Column("disabled_reason", Text),  # set when something it refers to was deleted
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    UniqueConstraint("space_id", "name", name="uq_automations_space_name"),
    Index("ix_automations_space_trigger", "space_id", "trigger", "enabled"),
)

# One automation run: what triggered it, for whom, and each action's outcome.
automation_runs = Table(
    "automation_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("automation_id", ForeignKey("automations.id", ondelete="CASCADE"), nullable=False),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE")),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="SET NULL")),
    Column("status", String(8), nullable=False),  # done | failed | waiting
    Column("steps", JSON, nullable=False, default=list),  # [{"action", "outcome"|"error"}]
    _created(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Index("ix_automation_runs_automation", "automation_id", "id"),
    Index("ix_automation_runs_automation_contact", "automation_id", "contact_id"),
)

# What automations wait for: events to hand to the worker (due now), `no_reply`
# deadlines, the rest of a run after a `wait`, the next `schedule`/`date_field` round.
# The clock takes due rows (deleting them) and queues work items in the same commit.
automation_timers = Table(
    "automation_timers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("automation_id", ForeignKey("automations.id", ondelete="CASCADE")),
    Column("kind", String(12), nullable=False),  # event | no_reply | wait | schedule | date_field
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE")),
    Column("conversation_id", ForeignKey("conversations.id", ondelete="CASCADE")),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSON, nullable=False, default=dict),
    # one pending timer per key (no_reply:<automation>:<conversation>, schedule:<automation>)
    Column("key", String(64), unique=True),
    Index("ix_automation_timers_due", "due_at"),
    Index("ix_automation_timers_conversation", "conversation_id"),
)

# Broadcasts: one message to a segment (a view or listed contacts) through one channel.
broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("space_id", ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("view_id", ForeignKey("views.id", ondelete="SET NULL")),
    Column("contact_ids", JSON),  # the segment when it is not a view
    Column("segment", JSON),  # the view's filter as it was at the start
    Column("message", JSON, nullable=False),  # the validated `BroadcastMessage`
    Column("settings", JSON, nullable=False, default=dict),  # {"skip_with_person": true}
    # draft | scheduled | running | paused | completed | cancelled
    Column("status", String(12), nullable=False, server_default="draft"),
    Column("send_at", DateTime(timezone=True)),
    # planning walks the segment by contact id; each page commits with the id it reached,
    # so a restart (or a second process) continues where the last page ended
    Column("planned_through", Integer),
    Column("planned", Integer, nullable=False, server_default="0"),
    Column("created_by", ForeignKey("users.id", ondelete="SET NULL")),
    _created(),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("last_error", Text),
    UniqueConstraint("space_id", "name", name="uq_broadcasts_space_name"),
    Index("ix_broadcasts_status", "status"),
)

# One row per contact of a started broadcast; each is sent at most once.
broadcast_recipients = Table(
    "broadcast_recipients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("broadcast_id", ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("identity_id", ForeignKey("identities.id", ondelete="SET NULL")),
    # queued | sending | sent | failed | skipped | interrupted (in flight when its process died)
    Column("status", String(12), nullable=False),
    Column("reason", Text),  # why skipped or failed
    Column("message_id", ForeignKey("messages.id", ondelete="SET NULL")),
    Column("claimed_by", String(64)),  # the process sending it
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("broadcast_id", "contact_id", name="uq_broadcast_recipients_contact"),
    Index("ix_broadcast_recipients_status", "broadcast_id", "status", "id"),
    Index("ix_broadcast_recipients_message", "message_id"),
)
