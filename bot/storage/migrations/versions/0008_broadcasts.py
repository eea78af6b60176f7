"""broadcasts and their recipients; contacts may unsubscribe from broadcasts; conversations
are found by identity

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("unsubscribed_at", sa.DateTime(timezone=True)))
    op.create_index("ix_conversations_identity", "conversations", ["identity_id"])
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "space_id", sa.Integer, sa.ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column(
            "channel_id",
            sa.String(32),
            sa.ForeignKey("channels.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("view_id", sa.Integer, sa.ForeignKey("views.id", ondelete="SET NULL")),
        sa.Column("contact_ids", sa.JSON),
        sa.Column("segment", sa.JSON),
        sa.Column("message", sa.JSON, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("status", sa.String(12), nullable=False, server_default="draft"),
        sa.Column("send_at", sa.DateTime(timezone=True)),
        sa.Column("planned_through", sa.Integer),
        sa.Column("planned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("space_id", "name", name="uq_broadcasts_space_name"),
    )
    op.create_index("ix_broadcasts_status", "broadcasts", ["status"])
    op.create_table(
        "broadcast_recipients",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "broadcast_id",
            sa.Integer,
            sa.ForeignKey("broadcasts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "contact_id",
            sa.Integer,
            sa.ForeignKey("contacts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("identity_id", sa.Integer, sa.ForeignKey("identities.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="SET NULL")),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("broadcast_id", "contact_id", name="uq_broadcast_recipients_contact"),
    )
    op.create_index(
        "ix_broadcast_recipients_status",
        "broadcast_recipients",
        ["broadcast_id", "status", "id"],
    )
    op.create_index("ix_broadcast_recipients_message", "broadcast_recipients", ["message_id"])


def downgrade() -> None:
    op.drop_table("broadcast_recipients")
    op.drop_table("broadcasts")
    op.drop_index("ix_conversations_identity", "conversations")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("unsubscribed_at")
