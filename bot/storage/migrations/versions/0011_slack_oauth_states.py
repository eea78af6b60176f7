"""a Slack OAuth install's state, issued for one space and consumed once by the callback;
a channel's last send error found by index

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_oauth_states",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column(
            "space_id",
            sa.Integer,
            sa.ForeignKey("spaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_messages_channel_status", "messages", ["channel_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_channel_status", "messages")
    op.drop_table("slack_oauth_states")
