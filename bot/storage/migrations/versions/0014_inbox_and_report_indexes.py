"""the inbox's order by index (latest activity, then id), and the reports' ranges of days:
messages and conversations by when they were made, conversations by when they closed

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_conversations_space_last_message", "conversations")
    op.create_index(
        "ix_conversations_space_recent", "conversations", ["space_id", "last_message_at", "id"]
    )
    op.create_index("ix_conversations_space_created", "conversations", ["space_id", "created_at"])
    op.create_index("ix_conversations_space_closed", "conversations", ["space_id", "closed_at"])
    op.create_index("ix_messages_space_created", "messages", ["space_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_messages_space_created", "messages")
    op.drop_index("ix_conversations_space_closed", "conversations")
    op.drop_index("ix_conversations_space_created", "conversations")
    op.drop_index("ix_conversations_space_recent", "conversations")
    op.create_index(
        "ix_conversations_space_last_message", "conversations", ["space_id", "last_message_at"]
    )
