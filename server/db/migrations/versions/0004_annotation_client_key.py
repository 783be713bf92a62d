"""annotations.client_key: a desktop's idempotency key for creating an annotation

A desktop outbox retries a create whose answer was lost; the key it generated makes the retry
return the annotation the first attempt made instead of a second one (or a 409).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_key", sa.String(length=64), nullable=True))
        batch_op.create_index("uq_annotations_client_key", ["annotator_id", "client_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index("uq_annotations_client_key")
        batch_op.drop_column("client_key")
