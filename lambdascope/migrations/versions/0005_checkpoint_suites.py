"""Evaluation suites: a checkpoint row names the suite it evaluates (None: the run's own
evaluation set), with an index for a run's curves per suite.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('checkpoints', sa.Column('suite', sa.String(length=64), nullable=True))
    op.create_index('ix_checkpoints_suite', 'checkpoints', ['run_id', 'suite', 'step'])


def downgrade() -> None:
    op.drop_index('ix_checkpoints_suite', table_name='checkpoints')
    # a plain ALTER TABLE … DROP COLUMN (SQLite >= 3.35): a batch copy of the table would drop
    # it, and with it (ON DELETE CASCADE) every prediction and rollout
    op.drop_column('checkpoints', 'suite')
