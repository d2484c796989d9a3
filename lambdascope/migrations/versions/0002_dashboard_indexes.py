"""Indexes for the dashboard's reads: examples sorted by confidence, term length and steps to
normal form along an index (keyset pagination), and metric curves read from the index alone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_predictions_conf', 'predictions',
                    ['checkpoint_id', sa.text('(start_conf * end_conf)'), 'example_id'])
    op.create_index('ix_examples_len', 'examples', ['eval_set_id', 'term_len'])
    op.create_index('ix_examples_togo', 'examples', ['eval_set_id', sa.text('(steps_total - step_k)')])
    op.create_index('ix_metric_points_curve', 'metric_points', ['run_id', 'name', 'step', 'value'])


def downgrade() -> None:
    for name, table in (('ix_metric_points_curve', 'metric_points'), ('ix_examples_togo', 'examples'),
                        ('ix_examples_len', 'examples'), ('ix_predictions_conf', 'predictions')):
        op.drop_index(name, table_name=table)
