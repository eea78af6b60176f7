"""outbox rows name their conversation, so "does this conversation owe a send?" is one
index probe (it read every message of the conversation); when the next retry is due is
another (it read the whole outbox)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("conversation_id", sa.Integer))
    op.execute(
        "UPDATE outbox SET conversation_id ="
        " (SELECT conversation_id FROM messages WHERE messages.id = outbox.message_id)"
    )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("conversation_id", existing_type=sa.Integer, nullable=False)
        batch.create_foreign_key(
            "fk_outbox_conversation_id",
            "conversations",
            ["conversation_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_outbox_conversation", ["conversation_id", "id"])
        batch.create_index("ix_outbox_due", ["next_attempt_at"])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_due")
        batch.drop_index("ix_outbox_conversation")
        batch.drop_constraint("fk_outbox_conversation_id", type_="foreignkey")
        batch.drop_column("conversation_id")
