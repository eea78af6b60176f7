"""listed contacts: one index for a space's unmerged contacts, newest first

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_contacts_space_listed", "contacts", ["space_id", "merged_into_id", "id"])
    op.drop_index("ix_contacts_space_id", table_name="contacts")


def downgrade() -> None:
    op.create_index("ix_contacts_space_id", "contacts", ["space_id", "id"])
    op.drop_index("ix_contacts_space_listed", table_name="contacts")
