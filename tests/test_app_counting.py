"""The examples page's counts from arrays in memory (``app.counting``) against the SQL that
defines them (``app.filters.count_sql``): every filter of the page, on a checkpoint with a
prediction for each example of its set and on one with predictions for only some of them; a
new label changes the ``labelled`` counts at once; a checkpoint whose predictions name an
example outside its set is counted by the store."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.cache import Aggregates
from app.comparison import CheckpointVector
from app.counting import SetArrays, positions
from app.filters import ExampleFilter, count_sql
from app.queries import count_examples, get_checkpoint
from lambdascope.store import Label, open_store, write_evaluation
from lambdascope.vocabulary import ERROR_KINDS

from tests.app_store import build_small_store, prediction


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('counting') / 'store.db'}"
    seeded = build_small_store(url)
    engine, Session = open_store(url)
    with Session() as s:
        # labels on a whole trace and on single steps (of another trace)
        t0, t1 = seeded.traces[0], seeded.traces[3]
        s.add_all([Label(trace_identity=t0.identity, step_k=None, category="bad_gold"),
                   Label(trace_identity=t1.identity, step_k=1, category="bad_gold"),
                   Label(trace_identity=t1.identity, step_k=0, category="other")])
        # a checkpoint evaluated on every other example of the set only
        es = s.execute(text("SELECT eval_set_id FROM checkpoints WHERE id = :c"), {"c": seeded.ck1}).scalar_one()
        rows = []
        for k, tr in enumerate(seeded.traces):
            for r in tr.records:
                if (k + r.step_k) % 2 == 0:
                    eid = seeded.example_ids[(tr.identity, r.step_k)]
                    rows.append(prediction(random.Random(eid), eid, r.term, r.span,
                                           seeded.preds[seeded.ck1][(tr.identity, r.step_k)]))
        partial = write_evaluation(s, run_id=seeded.run_a, eval_set_id=es, step=300, path="partial.pt",
                                   metrics={}, predictions=rows, rollouts=[], metric_points=[])
        s.commit()
    terms = [r.term for tr in seeded.traces for r in tr.records]
    yield {"Session": Session, "cks": [seeded.ck1, seeded.ck2, partial], "terms": terms,
           "cache": Aggregates(), "seeded": seeded}
    engine.dispose()


def sql_count(session, f: ExampleFilter) -> int:
    sql, params = count_sql(f, session.get_bind().dialect.name)
    return int(session.execute(text(sql), params).scalar_one())


bound = st.one_of(st.none(), st.integers(0, 60))
filters = st.fixed_dictionaries({
    "correct": st.sampled_from(["", "right", "wrong"]),
    "kind": st.lists(st.sampled_from(list(ERROR_KINDS)), unique=True, max_size=3).map(
        lambda ks: tuple(k for k in ERROR_KINDS if k in ks)),
    "iou_min": st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 0.99, 1.0])),
    "iou_max": st.one_of(st.none(), st.sampled_from([0.1, 0.5, 1.0])),
    "nf": st.one_of(st.none(), st.booleans()),
    "pred_nf": st.one_of(st.none(), st.booleans()),
    "len_min": bound, "len_max": bound,
    "togo_min": st.one_of(st.none(), st.integers(0, 6)), "togo_max": st.one_of(st.none(), st.integers(0, 6)),
    "labelled": st.one_of(st.none(), st.booleans()),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=filters, which=st.integers(0, 2), q=st.one_of(st.just(""), st.integers(0, 10_000), st.just("zz")))
def test_counts_from_arrays_equal_the_sql_count(counted, fields, which, q):
    with counted["Session"]() as s:
        ck = get_checkpoint(counted["cks"][which], session=s)
        if isinstance(q, int):  # a piece of a real term, so that searches find something
            term = counted["terms"][q % len(counted["terms"])]
            q = term[q % max(1, len(term) - 3):][:4]
        f = ExampleFilter(ck=ck["id"], q=q, **fields)
        assert count_examples(f, ck, session=s, cache=counted["cache"]) == sql_count(s, f)


def test_the_partial_checkpoint_is_counted_by_position(counted):
    """The partial checkpoint has about half its set's examples: the arrays are gathered."""
    with counted["Session"]() as s:
        partial = get_checkpoint(counted["cks"][2], session=s)
        vec = counted["cache"].vector(s, (partial["id"], partial["created_at"]))
        sa = counted["cache"].set_arrays(s, partial["eval_set_id"])
        at = positions(vec, sa)
        assert isinstance(at, np.ndarray) and 0 < len(vec.ids) < len(sa.ids)
        assert count_examples(ExampleFilter(ck=partial["id"]), partial, session=s, cache=counted["cache"]) \
            == len(vec.ids)
        assert count_examples(ExampleFilter(ck=partial["id"], nf=True), partial, session=s, cache=counted["cache"]) \
            == sql_count(s, ExampleFilter(ck=partial["id"], nf=True)) > 0


def test_a_new_label_changes_the_labelled_counts_at_once(counted):
    seeded, cache = counted["seeded"], Aggregates()
    with counted["Session"]() as s:
        ck = get_checkpoint(seeded.ck2, session=s)
        f = ExampleFilter(ck=ck["id"], labelled=True)
        before = count_examples(f, ck, session=s, cache=cache)
        unlabelled = count_examples(ExampleFilter(ck=ck["id"], labelled=False), ck, session=s, cache=cache)
        tr = seeded.traces[5]
        s.add(Label(trace_identity=tr.identity, step_k=None, category="other"))
        s.commit()
        after = count_examples(f, ck, session=s, cache=cache)
        assert after == before + len(tr.records) == sql_count(s, f)
        assert count_examples(ExampleFilter(ck=ck["id"], labelled=False), ck, session=s, cache=cache) \
            == unlabelled - len(tr.records)
        s.query(Label).filter(Label.trace_identity == tr.identity, Label.category == "other").delete()
        s.commit()
        assert count_examples(f, ck, session=s, cache=cache) == before


def _vec(ids):
    n = len(ids)
    return CheckpointVector(np.array(ids, dtype=np.int64), np.zeros(n), np.zeros(n, bool),
                            np.zeros(n, np.uint8), np.zeros(n, bool))


def test_positions_says_where_each_example_is_or_that_one_is_not_in_the_set():
    sa = SetArrays(np.array([2, 4, 6, 8], dtype=np.int64), np.zeros(4, bool), np.zeros(4, np.int64),
                   np.zeros(4, np.int64))
    assert positions(_vec([2, 4, 6, 8]), sa) == slice(None)
    assert positions(_vec([4, 8]), sa).tolist() == [1, 3]
    assert positions(_vec([]), sa).tolist() == []
    assert positions(_vec([4, 5]), sa) is None  # 5 is no example of the set
    assert positions(_vec([8, 9]), sa) is None  # past its last example
    assert positions(_vec([1, 2]), sa) is None  # before its first


def test_an_example_outside_the_set_is_counted_by_the_store(counted, monkeypatch):
    import app.queries as queries

    with counted["Session"]() as s:
        ck = get_checkpoint(counted["cks"][0], session=s)
        f = ExampleFilter(ck=ck["id"], correct="wrong", nf=False)
        monkeypatch.setattr(queries, "positions", lambda vec, sa: None)
        assert count_examples(f, ck, session=s, cache=Aggregates()) == sql_count(s, f) > 0


def test_counts_from_arrays_equal_the_sql_count_over_postgres(pg_seeded):
    """The arrays read through PostgreSQL's driver (its parameter style, its booleans)."""
    engine, Session = open_store(pg_seeded.url)
    cache = Aggregates()
    with Session() as s:
        s.add(Label(trace_identity=pg_seeded.traces[2].identity, step_k=None, category="bad_gold"))
        s.commit()
        term = pg_seeded.traces[1].records[0].term
        for ck_id in (pg_seeded.ck1, pg_seeded.ck2):
            ck = get_checkpoint(ck_id, session=s)
            for fields in ({}, {"correct": "wrong", "nf": False}, {"kind": ("not_redex", "false_nf")},
                           {"pred_nf": True}, {"iou_min": 0.25, "iou_max": 1.0}, {"len_min": 20, "togo_max": 3},
                           {"labelled": True}, {"labelled": False, "correct": "right"}, {"q": term[2:6]},
                           {"q": term[:5], "kind": ("exact",)}):
                f = ExampleFilter(ck=ck_id, **fields)
                assert count_examples(f, ck, session=s, cache=cache) == sql_count(s, f), fields
    engine.dispose()
