"""reports without scanning every message: conversations keep when a person first took
part and first wrote; messages are counted per local day once the day has ended
(`report_days`, how far in `report_books`); a person's messages have their own index

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

PEOPLE = "direction = 'out' AND sender_user_id IS NOT NULL"

# what the hub now writes as it happens, found in the history: the first assignment to a
# person, or a person's first message; a conversation a person holds without either
# (handler waiting/agent) took part when it last moved
FIRST_REPLY = """
UPDATE conversations SET first_reply_at = (
  SELECT min(m.created_at) FROM messages m
  WHERE m.conversation_id = conversations.id AND m.direction = 'out' AND m.sender_type = 'user')
"""
HANDED_OVER = """
UPDATE conversations SET handed_over_at = coalesce(
  (SELECT min(a.created_at) FROM assignments a
   WHERE a.conversation_id = conversations.id AND a.user_id IS NOT NULL),
  first_reply_at,
  CASE WHEN handler IN ('waiting', 'agent') THEN coalesce(last_message_at, created_at) END)
"""


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("handed_over_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("first_reply_at", sa.DateTime(timezone=True)))
    op.execute(FIRST_REPLY)
    op.execute(HANDED_OVER)
    op.create_index(
        "ix_messages_people_out",
        "messages",
        ["space_id", "created_at", "sender_user_id", "conversation_id"],
        sqlite_where=sa.text(PEOPLE),
        postgresql_where=sa.text(PEOPLE),
    )
    op.create_table(
        "report_days",
        sa.Column(
            "space_id",
            sa.Integer,
            sa.ForeignKey("spaces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column(
            "channel_id",
            sa.String(32),
            sa.ForeignKey("channels.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("direction", sa.String(4), primary_key=True),
        sa.Column("messages", sa.Integer, nullable=False),
    )
    op.create_table(
        "report_books",
        sa.Column(
            "space_id",
            sa.Integer,
            sa.ForeignKey("spaces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("through", sa.Date),
    )


def downgrade() -> None:
    op.drop_table("report_books")
    op.drop_table("report_days")
    op.drop_index("ix_messages_people_out", "messages")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("first_reply_at")
        batch.drop_column("handed_over_at")
