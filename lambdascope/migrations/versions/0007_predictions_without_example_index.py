"""Drop the index of predictions by example alone (``ix_predictions_example``).

No query reads predictions by example without their checkpoint: every one goes through the
primary key (checkpoint_id, example_id) or one of the indexes that lead with the checkpoint. The
index only cost writes: each evaluation's 100,000 predictions landed at scattered places in it,
1.2-2.5 s of the 3.2-4.7 s that writing one took into a store of 10,000,000 predictions (2.0-2.4 s
without it; docs/DESIGN.md, "The store"). Its one possible use, the cascade of an
example's deletion to its predictions, has no caller: an evaluation set's examples are written
once and never deleted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_predictions_example', table_name='predictions')


def downgrade() -> None:
    op.create_index('ix_predictions_example', 'predictions', ['example_id'])
