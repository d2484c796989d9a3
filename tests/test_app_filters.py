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
