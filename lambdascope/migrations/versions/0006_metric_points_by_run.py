"""An index on (run_id, id) of metric points: a run's newest point in one lookup, which the
dashboard's page cache reads on every run page (app/page_cache.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_metric_points_run_id', 'metric_points', ['run_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_metric_points_run_id', table_name='metric_points')
