"""app.comparison against a plain-Python reading of two checkpoints: the counts, the 7 x 7
transitions, every list's order (largest IoU change first, ties by example id) and keyset
paging over it in both orders, with and without error-kind filters, when the two checkpoints
cover the same examples or different ones. And the byte-bounded cache that keeps them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cache import Memo
from app.comparison import KIND_INDEX, UNJUDGED, CheckpointVector, compute_comparison
from lambdascope.vocabulary import ERROR_KINDS

KINDS = list(ERROR_KINDS) + [None]


def vector(rows: dict[int, tuple[float, str | None]]) -> CheckpointVector:
    ids = sorted(rows)
    return CheckpointVector(np.array(ids, dtype=np.int64), np.array([rows[i][0] for i in ids], dtype=np.float64),
                            np.array([rows[i][0] == 1.0 for i in ids], dtype=bool),
                            np.array([KIND_INDEX.get(rows[i][1], UNJUDGED) for i in ids], dtype=np.uint8),
                            np.zeros(len(ids), dtype=bool))


# IoUs from a few values, so that ties (equal changes, equal IoUs) are common
iou = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
checkpoint = st.dictionaries(st.integers(1, 40), st.tuples(iou, st.sampled_from(KINDS)), max_size=30)


def reference_list(a, b, kind, kind_a=None, kind_b=None):
    both = sorted(set(a) & set(b))
    chosen = []
    for eid in both:
        (x, ka), (y, kb) = a[eid], b[eid]
        ex, ey = x == 1.0, y == 1.0
        keep = {"regressions": y < x, "improvements": y > x, "broken": ex and not ey,
                "fixed": ey and not ex, "all": True}[kind]
        if keep and (kind_a is None or ka == kind_a) and (kind_b is None or kb == kind_b):
            chosen.append((abs(y - x), eid, x, y, ex, ey))
    return sorted(chosen, key=lambda r: (-r[0], r[1]))


@settings(max_examples=200, deadline=None)
@given(a=checkpoint, b=checkpoint, kind=st.sampled_from(["regressions", "improvements", "broken", "fixed", "all"]),
       kind_a=st.sampled_from([None, *ERROR_KINDS]), kind_b=st.sampled_from([None, *ERROR_KINDS]),
       limit=st.integers(1, 7), same=st.booleans())
def test_a_comparison_matches_a_plain_reading_of_both_checkpoints(a, b, kind, kind_a, kind_b, limit, same):
    if same:  # the same examples at both: the fast path that shares the ids
        b = {eid: b.get(eid, (0.0, None)) for eid in a}
    cmp = compute_comparison(vector(a), vector(b))
    both = sorted(set(a) & set(b))
    pairs = [(a[e][0] == 1.0, b[e][0] == 1.0) for e in both]
    assert cmp.n == len(both)
    assert (cmp.fixed, cmp.broken, cmp.both_right, cmp.both_wrong) == (
        pairs.count((False, True)), pairs.count((True, False)), pairs.count((True, True)),
        pairs.count((False, False)))
    expected = [[0] * len(ERROR_KINDS) for _ in ERROR_KINDS]
    for e in both:
        if a[e][1] is not None and b[e][1] is not None:
            expected[KIND_INDEX[a[e][1]]][KIND_INDEX[b[e][1]]] += 1
    assert cmp.transitions == expected
    want = reference_list(a, b, kind, kind_a, kind_b)
    for order, rows in (("change", want), ("-change", want[::-1])):
        got, after, more = [], None, True
        while more:  # keyset paging: each page starts after the last row of the one before
            page, more = cmp.page(kind, order, after, limit, kind_a, kind_b)
            assert len(page) <= limit and (page or not more)
            got += page
            after = (page[-1][0], page[-1][1]) if page else None
        assert got == rows
        assert all(type(v) in (float, int, bool) for row in got for v in row)


class Sized:
    def __init__(self, nbytes: int):
        self.nbytes = nbytes


def test_the_byte_bounded_memo_drops_the_oldest_values_past_its_budget_and_keeps_the_newest():
    memo = Memo(100, max_bytes=250)
    for key in range(3):
        memo.get(key, lambda: Sized(100))
    assert len(memo) == 2 and memo.nbytes == 200  # the third pushed the first out
    memo.get(1, lambda: Sized(1))  # a hit: kept, made the newest
    memo.get(9, lambda: Sized(1000))  # larger than the budget alone: kept, everything else gone
    assert len(memo) == 1 and memo.nbytes == 1000
    calls = []
    memo.get(9, lambda: calls.append(1))
    assert calls == []
    memo.clear()
    assert len(memo) == 0 and memo.nbytes == 0
