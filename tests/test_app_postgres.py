"""The dashboard over PostgreSQL (a throwaway cluster): the same pages, filters, keyset pages,
comparison and label writes as over SQLite. Skipped when no PostgreSQL server can be started."""

import re

import pytest

from tests.app_helpers import SORT_KEYS, matches, pages, walk

# pg_seeded and pg_client (tests/conftest.py): the small seeded store in a database of its own in
# the session's PostgreSQL cluster, and a dashboard over it; skipped where PostgreSQL cannot run.


def rows_of(seeded, ck):
    from lambdascope.spans import span_iou

    out = []
    for tr in seeded.traces:
        for r in tr.records:
            pred = seeded.preds[ck][(tr.identity, r.step_k)]
            out.append({"id": seeded.example_ids[(tr.identity, r.step_k)], "term": r.term,
                        "gold": r.span, "pred": pred, "iou": span_iou(*pred, *r.span),
                        "exact": pred == r.span, "len": len(r.term), "togo": r.steps_total - r.step_k})
    return out


def test_pages_over_postgres(pg_seeded, pg_client):
    seeded, c = pg_seeded, pg_client
    for page, twin in pages(seeded):
        assert c.get(page).status_code == 200, page
        assert c.get(twin).status_code == 200, twin
    assert c.get(f"/runs/{seeded.run_a}").status_code == 200


@pytest.mark.parametrize("sort", ["example", "iou", "-iou", "len", "-togo"])
@pytest.mark.parametrize("f", [{}, {"correct": "wrong", "q": "λx"}, {"nf": "0", "len_min": "30"}])
def test_filters_over_postgres(pg_seeded, pg_client, f, sort):
    seeded, c = pg_seeded, pg_client
    rows = rows_of(seeded, seeded.ck2)
    want = [r["id"] for r in sorted((r for r in rows if matches(r, f)), key=SORT_KEYS[sort])]
    ids, total = walk(c, {"ck": seeded.ck2, "sort": sort, "limit": "25", **f})
    assert total == len(want) and ids == want


def test_compare_summary_queue_and_labels_over_postgres(pg_seeded, pg_client):
    seeded, c = pg_seeded, pg_client
    d = c.get(f"/compare.json?a={seeded.ck1}&b={seeded.ck2}").json()
    assert [(r["identity"], r["step_k"]) for r in d["rows"]] == [seeded.regression]
    s = c.get(f"/checkpoints/{seeded.ck1}.json").json()["summary"]
    assert s["n"] == len(rows_of(seeded, seeded.ck1)) and sum(b["n"] for b in s["iou_histogram"]) == s["n"]
    q = c.get(f"/queue.json?ck={seeded.ck1}").json()
    ident = q["next"]["identity"]
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', c.get(f"/traces/{ident}").text).group(1)
    r = c.post("/labels", data={"csrf": token, "identity": ident, "step": str(q["next"]["step_k"]),
                                "category": "bad_gold", "note": "pg"}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get(f"/queue.json?ck={seeded.ck1}").json()["remaining"] == q["remaining"] - 1
    assert c.get(f"/examples.json?ck={seeded.ck1}&labelled=1").json()["total"] == 1
    assert '"note": "pg"' in c.get("/labels/export.jsonl").text


def test_nul_characters_are_refused_before_postgresql_sees_them(pg_seeded, pg_client):
    """PostgreSQL cannot hold NUL in text: a %00 in any parameter, or a NUL in a label's note,
    is a 400 with a message, never a 500 from deep inside a query."""
    seeded, c = pg_seeded, pg_client
    for address in (f"/runs/{seeded.run_a}.json?problems_reason=a%00b", "/labels.json?category=%00",
                    f"/traces/{seeded.traces[0].identity}.json?step=%00"):
        r = c.get(address)
        assert r.status_code == 400 and "NUL" in r.text, (address, r.status_code, r.text[:200])
    ident = seeded.traces[1].identity
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', c.get(f"/traces/{ident}").text).group(1)
    before = c.get("/labels.json").json()["total"]
    r = c.post("/labels", data={"csrf": token, "identity": ident, "category": "other", "note": "a\x00b"},
               follow_redirects=False)
    assert r.status_code == 400 and "NUL" in r.text
    assert c.get("/labels.json").json()["total"] == before
