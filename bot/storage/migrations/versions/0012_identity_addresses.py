"""an identity's address: how its platform reaches it when the id alone does not say
(a Bot Framework conversation reference)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("address", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("address")
