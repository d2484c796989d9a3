"""The examples filters as pure functions: URL parameters -> filter -> parameterised SQL."""

import sqlite3

import pytest

from app.errors import BadRequest
from app.filters import (SORTS, ExampleFilter, count_sql, decode_cursor, encode_cursor,
                         list_sql, parse_filter, where_sql)


@pytest.mark.parametrize("args, expected", [
    ({}, ExampleFilter()),
    ({"ck": "3"}, ExampleFilter(ck=3)),
    ({"ck": "3", "correct": "wrong"}, ExampleFilter(ck=3, correct="wrong")),
    ({"correct": "any"}, ExampleFilter()),
    ({"iou_min": "0.3", "iou_max": "0.4"}, ExampleFilter(iou_min=0.3, iou_max=0.4)),
    ({"iou_min": "", "iou_max": "", "len_min": " "}, ExampleFilter()),  # an HTML form's empty fields
    ({"nf": "1", "pred_nf": "0", "labelled": "no"}, ExampleFilter(nf=True, pred_nf=False, labelled=False)),
    ({"len_min": "10", "len_max": "10"}, ExampleFilter(len_min=10, len_max=10)),
    ({"togo_min": "0", "togo_max": "3"}, ExampleFilter(togo_min=0, togo_max=3)),
    ({"q": "λx.x x"}, ExampleFilter(q="λx.x x")),
    ({"sort": "-iou", "after": "0.5,17"}, ExampleFilter(sort="-iou", after="0.5,17")),
    ({"limit": "20", "unknown": "ignored", "token": "x"}, ExampleFilter(limit=20)),
])
def test_parse_filter(args, expected):
    assert parse_filter(args) == expected


@pytest.mark.parametrize("args, mentions", [
    ({"ck": "abc"}, "ck"),
    ({"ck": "-1"}, "ck"),
    ({"ck": "0"}, "ck"),
    ({"ck": "9" * 30}, "ck"),
    ({"correct": "maybe"}, "correct"),
    ({"iou_min": "1.5"}, "iou_min"),
    ({"iou_min": "nan"}, "iou_min"),
    ({"iou_max": "-0.1"}, "iou_max"),
    ({"iou_min": "0.6", "iou_max": "0.2"}, "iou_min"),
    ({"iou_min": "0.5", "iou_max": "0.5"}, "iou_min"),
    ({"len_min": "9", "len_max": "3"}, "len_min"),
    ({"togo_min": "-1"}, "togo_min"),
    ({"nf": "perhaps"}, "nf"),
    ({"q": "x" * 10_000}, "q"),
    ({"q": "a\x00b"}, "q"),
    ({"sort": "random()"}, "sort"),
    ({"after": "garbage", "sort": "iou"}, "cursor"),
    ({"after": "nan,3", "sort": "iou"}, "cursor"),
    ({"after": "1", "before": "2"}, "after and before"),
    ({"limit": "0"}, "limit"),
    ({"limit": "100000"}, "limit"),
])
def test_parse_filter_rejects_with_a_message(args, mentions):
    with pytest.raises(BadRequest) as e:
        parse_filter(args)
    assert mentions in str(e.value)


@pytest.mark.parametrize("sort", list(SORTS))
def test_cursor_round_trip(sort):
    s = SORTS[sort]
    key = 0.1 + 0.2 if s.kind is float else 17
    text = encode_cursor(s, key, 42)
    got_key, got_id = decode_cursor(text, s)
    assert got_id == 42
    assert got_key == (42 if s.expr is None else key)


def test_params_round_trip_and_drop_cursors_on_change():
    f = parse_filter({"ck": "2", "correct": "wrong", "iou_min": "0.3", "iou_max": "0.4",
                      "sort": "iou", "after": "0.35,9"})
    assert parse_filter(f.params()) == f
    assert "after" not in f.params(correct="right")
    assert f.params(after="0.5,10")["after"] == "0.5,10"
    assert "iou_min" not in f.params_without("iou") and "iou_max" not in f.params_without("iou")


def test_user_text_reaches_sql_only_as_parameters():
    evil = "'); DROP TABLE labels; --"
    f = parse_filter({"ck": "1", "q": evil, "sort": "-len", "after": "5,3"})
    for sql, params in (list_sql(f, "sqlite", 1)[:2], count_sql(f)):
        assert evil not in sql and "DROP" not in sql
        assert evil in params.values()


@pytest.mark.parametrize("args, needs_examples", [
    ({"ck": "1"}, False),
    ({"ck": "1", "correct": "wrong", "iou_min": "0.2", "pred_nf": "1"}, False),
    ({"ck": "1", "nf": "1"}, True),
    ({"ck": "1", "q": "x"}, True),
    ({"ck": "1", "labelled": "0"}, True),
])
def test_count_joins_examples_only_when_needed(args, needs_examples):
    sql, _ = count_sql(parse_filter(args))
    assert ("examples" in sql) == needs_examples


def test_sql_runs_on_an_empty_schema(tmp_path):
    """Every sort, with and without cursors, is valid SQL (on an empty store)."""
    from lambdascope.store import create_schema, make_engine

    url = f"sqlite:///{tmp_path}/s.db"
    create_schema(make_engine(url))
    con = sqlite3.connect(tmp_path / "s.db")
    for sort, s in SORTS.items():
        cursor = encode_cursor(s, 0.5 if s.kind is float else 3, 7)
        for extra in ({}, {"after": cursor}, {"before": cursor}):
            f = parse_filter({"ck": "1", "sort": sort, "nf": "0", "labelled": "1", "q": "x",
                              "iou_min": "0.1", **extra})
            sql, params, _ = list_sql(f, "sqlite", 1)
            assert con.execute(sql, params).fetchall() == []
    conds, _ = where_sql(parse_filter({"ck": "1"}))
    assert conds == ["p.checkpoint_id = :ck"]


# ---------------------------------------------------------------------------------------------
# counts of a filter on the examples alone, shared by the checkpoints of an evaluation set


def _partial_checkpoint(seeded) -> tuple[int, set[tuple[str, int]]]:
    """A third checkpoint of run-a with predictions for the first half of the traces only (as a
    capped evaluation writes): the (identity, step) pairs it covers."""
    import random

    from sqlalchemy import text

    from lambdascope.store import open_store, write_evaluation
    from tests.app_store import prediction

    engine, Session = open_store(seeded.url)
    rng = random.Random(3)
    half = seeded.traces[: len(seeded.traces) // 2]
    covered = {(tr.identity, r.step_k) for tr in half for r in tr.records}
    with Session() as s:
        es_id = s.execute(text("SELECT eval_set_id FROM checkpoints WHERE id = :id"),
                          {"id": seeded.ck1}).scalar_one()
        rows = [prediction(rng, seeded.example_ids[(tr.identity, r.step_k)], r.term, r.span, r.span)
                for tr in half for r in tr.records]
        ck3 = write_evaluation(s, run_id=seeded.run_a, eval_set_id=es_id, step=300,
                               path="runs/run-a/ckpt-300.pt", metrics={"exact": 1.0},
                               predictions=rows, rollouts=[])
        s.commit()
    engine.dispose()
    return ck3, covered


def _brute_total(seeded, covered, keep) -> int:
    return sum(1 for tr in seeded.traces for r in tr.records
               if (tr.identity, r.step_k) in covered and keep(r))


def test_example_filter_counts_are_right_for_full_and_partial_checkpoints(fresh):
    """The total of a filter on the examples alone is counted once per evaluation set and
    shared by the checkpoints that cover the whole set; a checkpoint covering part of it counts
    its own. Opened in the order full, full, partial, full, every total is the brute count."""
    from tests.app_store import make_client

    ck3, partial = _partial_checkpoint(fresh)
    every = {(tr.identity, r.step_k) for tr in fresh.traces for r in tr.records}
    term = max((r.term for tr in fresh.traces for r in tr.records), key=len)
    sub = term[len(term) // 3: len(term) // 3 + 3]  # some terms have it, most do not
    lens = sorted(len(r.term) for tr in fresh.traces for r in tr.records)
    filters = [
        (f"q={sub}", lambda r: sub in r.term),
        (f"len_min={lens[len(lens) // 2]}", lambda r: len(r.term) >= lens[len(lens) // 2]),
        ("nf=1", lambda r: tuple(r.span) == (0, 0)),
        ("togo_max=1", lambda r: r.steps_total - r.step_k <= 1),
        (f"q=x&len_max={lens[len(lens) // 2]}", lambda r: "x" in r.term and len(r.term) <= lens[len(lens) // 2]),
    ]
    client = make_client(fresh.url, page_cache_mb=0)
    for query, keep in filters:
        for ck, covered in ((fresh.ck1, every), (fresh.ck2, every), (ck3, partial), (fresh.ck1, every)):
            r = client.get(f"/examples.json?ck={ck}&{query}")
            assert r.status_code == 200, r.text
            assert r.json()["total"] == _brute_total(fresh, covered, keep), (query, ck)
        assert 0 < _brute_total(fresh, every, keep) < len(every), query  # the filter selects


def test_a_search_is_counted_once_for_the_checkpoints_of_a_set(fresh):
    """Opening the same search on a second checkpoint of the set runs only its list statement:
    no second count over the terms (with 100 checkpoints it was a 30 ms count per checkpoint)."""
    from sqlalchemy import event

    from tests.app_store import make_client

    client = make_client(fresh.url, page_cache_mb=0)
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with client:
        event.listen(client.app.state.read_engine, "before_cursor_execute", seen)
        assert client.get(f"/examples.json?ck={fresh.ck1}&q=x").status_code == 200
        first = [s for s in statements if "instr(" in s]
        statements.clear()
        assert client.get(f"/examples.json?ck={fresh.ck2}&q=x").status_code == 200
        second = [s for s in statements if "instr(" in s]
    assert len(first) == 2  # the page's rows and the set's count
    assert len(second) == 1 and "LIMIT" in second[0].upper()  # the rows only


def test_the_examples_routes_read_and_document_every_filter_parameter(fresh):
    """The filter is read from the query string itself (``deps.get_example_filter``), not
    declared parameter by parameter: the OpenAPI document still lists each of its fields as an
    optional query parameter (``kind`` repeated), and the JSON twin reads each one, a repeated
    parameter by its last value and ``kind`` as every value."""
    import dataclasses

    from tests.app_store import make_client

    client = make_client(fresh.url, page_cache_mb=0)
    spec = client.get("/api/openapi.json").json()
    fields = [f.name for f in dataclasses.fields(ExampleFilter)]
    for path in ("/examples", "/examples.json"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert sorted(params) == sorted(fields), path
        assert not any(p["required"] for p in params.values()) and params["kind"]["schema"]["type"] == "array"
    r = client.get(f"/examples.json?ck={fresh.ck2}&ck={fresh.ck1}&kind=not_redex&kind=false_nf&correct=wrong"
                   "&len_min=3&togo_max=9&nf=0&sort=-len&limit=20&q=x")
    assert r.status_code == 200, r.text
    assert r.json()["filter"] == {"ck": str(fresh.ck1), "kind": ["false_nf", "not_redex"], "correct": "wrong",  # kinds in ERROR_KINDS order
                                  "len_min": "3", "togo_max": "9", "nf": "0", "sort": "-len", "limit": "20", "q": "x"}
    for bad, word in (("limit=abc", "limit"), ("page=2", "page"), ("kind=nope", "kind"), ("len_min=x", "len_min")):
        r = client.get(f"/examples.json?ck={fresh.ck1}&{bad}")
        assert r.status_code == 400 and word in r.json()["error"], (bad, r.text)
