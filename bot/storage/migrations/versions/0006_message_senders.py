"""message senders and contact assignment: who sent each message; contacts carry their assignee

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        # in | out | note (internal: never sent, listed with ?include=notes)
        batch.alter_column("direction", type_=sa.String(4), existing_nullable=False)
        # contact | user | bot | flow | automation | broadcast | unknown (outbound before this)
        batch.add_column(
            sa.Column("sender_type", sa.String(12), nullable=False, server_default="unknown")
        )
        # which one: the user's, automation's or broadcast's id, "builtin" or the Dialogflow
        # integration's id for a bot, the survey's id or "away" for a flow
        batch.add_column(sa.Column("sender_id", sa.String(64)))
    op.execute("UPDATE messages SET sender_type = 'contact' WHERE direction = 'in'")
    op.execute(
        "UPDATE messages SET sender_type = 'user', sender_id = CAST(sender_user_id AS VARCHAR)"
        " WHERE direction = 'out' AND sender_user_id IS NOT NULL"
    )
    # the contact is assigned (the glossary's Cesionario): its open conversation's assignee
    for column in ("assignee_id", "team_id"):
        op.execute(
            f"UPDATE contacts SET {column} = (SELECT c.{column} FROM conversations c"
            f" WHERE c.contact_id = contacts.id AND c.status = 'open'"
            f" AND c.{column} IS NOT NULL ORDER BY c.id DESC LIMIT 1)"
            f" WHERE {column} IS NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("sender_id")
        batch.drop_column("sender_type")
    op.execute("DELETE FROM messages WHERE direction = 'note'")
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("direction", type_=sa.String(3), existing_nullable=False)
