"""Error kinds on predictions, outcomes on rollouts (both judged for what is already stored, by
lambdascope.diagnosis), and the trainer's heartbeat on runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    op.add_column('predictions', sa.Column('error_kind', sa.String(length=16), nullable=True))
    op.add_column('rollouts', sa.Column('outcome', sa.String(length=16), nullable=True))
    op.add_column('runs', sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
    backfill(op.get_bind())
    op.create_index('ix_predictions_kind', 'predictions', ['checkpoint_id', 'error_kind', 'example_id'])


def backfill(conn) -> None:
    from lambdascope.diagnosis import judge, rollout_outcome

    t = sa.text
    for (es,) in conn.execute(t("SELECT id FROM eval_sets")).all():
        examples, gold_nf = {}, {}
        for eid, term, gs, ge, ident, k, total in conn.execute(t(
                "SELECT id, term, gold_start, gold_end, trace_identity, step_k, steps_total "
                "FROM examples WHERE eval_set_id = :es"), {"es": es}):
            examples[eid] = (term, (gs, ge))
            if k == total:
                gold_nf[ident] = term
        cks = [r[0] for r in conn.execute(t("SELECT id FROM checkpoints WHERE eval_set_id = :es"), {"es": es})]
        for ck in cks:
            rows = [{"k": judge(examples[e][0], examples[e][1], (s, en)), "ck": ck, "e": e}
                    for e, s, en in conn.execute(t(
                        "SELECT example_id, pred_start, pred_end FROM predictions WHERE checkpoint_id = :ck"),
                        {"ck": ck}) if e in examples]
            for i in range(0, len(rows), BATCH):
                conn.execute(t("UPDATE predictions SET error_kind = :k WHERE checkpoint_id = :ck "
                               "AND example_id = :e"), rows[i:i + BATCH])
            outs = []
            for ident, path, success, gold_steps in conn.execute(sa.select(
                    sa.column("trace_identity"), sa.column("path", sa.JSON), sa.column("success"),
                    sa.column("gold_steps")).select_from(sa.table("rollouts"))
                    .where(sa.column("checkpoint_id") == ck)):
                outs.append({"o": rollout_outcome(path or [], success=bool(success), gold_steps=gold_steps,
                                                  gold_normal_form=gold_nf.get(ident)), "ck": ck, "i": ident})
            if outs:
                conn.execute(t("UPDATE rollouts SET outcome = :o WHERE checkpoint_id = :ck "
                               "AND trace_identity = :i"), outs)


def downgrade() -> None:
    op.drop_index('ix_predictions_kind', table_name='predictions')
    op.drop_column('runs', 'heartbeat_at')
    op.drop_column('rollouts', 'outcome')
    op.drop_column('predictions', 'error_kind')
