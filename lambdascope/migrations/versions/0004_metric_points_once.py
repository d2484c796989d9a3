"""One metric point per (run, name, step): the repeats a resumed run wrote are removed (the
newest of each kept: the highest id, the last written) and a unique index keeps them out
(lambdascope.store.insert_metric_points replaces a point written again).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # along the (run_id, name, step) index that the unique one replaces
    op.get_bind().execute(sa.text(
        "DELETE FROM metric_points WHERE EXISTS (SELECT 1 FROM metric_points AS newer "
        "WHERE newer.run_id = metric_points.run_id AND newer.name = metric_points.name "
        "AND newer.step = metric_points.step AND newer.id > metric_points.id)"))
    op.create_index('uq_metric_points_run_name_step', 'metric_points', ['run_id', 'name', 'step'], unique=True)
    op.drop_index('ix_metric_points_run', table_name='metric_points')


def downgrade() -> None:
    op.create_index('ix_metric_points_run', 'metric_points', ['run_id', 'name', 'step'], unique=False)
    op.drop_index('uq_metric_points_run_name_step', table_name='metric_points')
