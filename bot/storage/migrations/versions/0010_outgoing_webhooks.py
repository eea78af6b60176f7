"""outgoing webhooks: subscriptions, the events outbox, deliveries kept with their attempts;
a flow's webhook end action becomes a delivery (flow_webhooks goes)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def _space() -> sa.Column:
    return sa.Column(
        "space_id", sa.Integer, sa.ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False
    )


def _at(name: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        _space(),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
        sa.Column("disabled_reason", sa.Text),
        _at("failing_since"),
        _at("created_at", nullable=False, server_default=NOW),
        _at("updated_at", nullable=False, server_default=NOW),
    )
    op.create_index("ix_webhooks_space", "webhooks", ["space_id"])
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer, primary_key=True),
        _space(),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("conversation_id", sa.Integer),
        sa.Column("data", sa.JSON, nullable=False),
        _at("created_at", nullable=False, server_default=NOW),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        _space(),
        sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id", ondelete="CASCADE")),
        sa.Column("url", sa.Text),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("conversation_id", sa.Integer),
        sa.Column("lane", sa.String(64)),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("status", sa.String(10), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _at("next_attempt_at", nullable=False, server_default=NOW),
        sa.Column("last_error", sa.Text),
        sa.Column("log", sa.JSON, nullable=False),
        _at("give_up_at", nullable=False),
        _at("created_at", nullable=False, server_default=NOW),
        _at("finished_at"),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", "id"])
    op.create_index("ix_webhook_deliveries_lane", "webhook_deliveries", ["lane", "id"])
    # what flows still owe their receivers is delivered by the one relay, for a day more
    sqlite = op.get_bind().dialect.name == "sqlite"
    day_later = (
        "datetime(f.next_attempt_at, '+1 day')"
        if sqlite
        else "f.next_attempt_at + interval '1 day'"
    )
    no_attempts = "'[]'" if sqlite else "'[]'::json"
    op.execute(
        "INSERT INTO webhook_deliveries (space_id, url, message_id, type, conversation_id,"
        " lane, body, attempts, next_attempt_at, last_error, log, give_up_at)"
        " SELECT c.space_id, f.url, 'msg_flow' || f.id, 'survey.webhook', f.conversation_id,"
        " 'own:' || f.conversation_id, f.body, f.attempts, f.next_attempt_at, f.last_error,"
        f" {no_attempts}, {day_later}"
        " FROM flow_webhooks f JOIN conversations c ON c.id = f.conversation_id"
    )
    op.drop_table("flow_webhooks")


def downgrade() -> None:
    op.create_table(
        "flow_webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "conversation_id",
            sa.Integer,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _at("next_attempt_at", nullable=False, server_default=NOW),
        sa.Column("last_error", sa.Text),
    )
    for table in ("webhook_deliveries", "webhook_events", "webhooks"):
        op.drop_table(table)
