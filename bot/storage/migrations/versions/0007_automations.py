"""automations: definitions, runs and timers; spaces count their automation changes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    with op.batch_alter_table("spaces") as batch:
        batch.add_column(
            sa.Column("automations_version", sa.Integer, nullable=False, server_default="0")
        )
    op.create_table(
        "automations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "space_id", sa.Integer, sa.ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("space_id", "name", name="uq_automations_space_name"),
    )
    op.create_index(
        "ix_automations_space_trigger", "automations", ["space_id", "trigger", "enabled"]
    )
    op.create_table(
        "automation_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "automation_id",
            sa.Integer,
            sa.ForeignKey("automations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "space_id", sa.Integer, sa.ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("contact_id", sa.Integer, sa.ForeignKey("contacts.id", ondelete="CASCADE")),
        sa.Column(
            "conversation_id", sa.Integer, sa.ForeignKey("conversations.id", ondelete="SET NULL")
        ),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_index("ix_automation_runs_automation", "automation_runs", ["automation_id", "id"])
    op.create_index(
        "ix_automation_runs_automation_contact",
        "automation_runs",
        ["automation_id", "contact_id"],
    )
    op.create_table(
        "automation_timers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "space_id", sa.Integer, sa.ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("automation_id", sa.Integer, sa.ForeignKey("automations.id", ondelete="CASCADE")),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("contact_id", sa.Integer, sa.ForeignKey("contacts.id", ondelete="CASCADE")),
        sa.Column(
            "conversation_id", sa.Integer, sa.ForeignKey("conversations.id", ondelete="CASCADE")
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("key", sa.String(64), unique=True),
    )
    op.create_index("ix_automation_timers_due", "automation_timers", ["due_at"])
    op.create_index("ix_automation_timers_conversation", "automation_timers", ["conversation_id"])


def downgrade() -> None:
    op.drop_table("automation_timers")
    op.drop_table("automation_runs")
    op.drop_table("automations")
    with op.batch_alter_table("spaces") as batch:
        batch.drop_column("automations_version")
