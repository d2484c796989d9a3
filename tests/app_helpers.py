"""What the dashboard's tests share besides the seeded store (tests/app_store.py): the pages and
their JSON twins, a brute-force reading of the examples filters and sorts, the keyset-page walker,
and a page's CSRF token."""

from __future__ import annotations

import re


def pages(seeded):
    ident = seeded.regression[0]
    return [
        ("/", "/runs.json"), (f"/runs/{seeded.run_a}", f"/runs/{seeded.run_a}.json"),
        (f"/runs/{seeded.run_b}", f"/runs/{seeded.run_b}.json"),
        (f"/checkpoints/{seeded.ck1}", f"/checkpoints/{seeded.ck1}.json"),
        (f"/examples?ck={seeded.ck1}&correct=wrong", f"/examples.json?ck={seeded.ck1}&correct=wrong"),
        (f"/traces/{ident}?ck={seeded.ck2}", f"/traces/{ident}.json?ck={seeded.ck2}"),
        (f"/traces/{ident}", f"/traces/{ident}.json"),
        (f"/compare?a={seeded.ck1}&b={seeded.ck2}", f"/compare.json?a={seeded.ck1}&b={seeded.ck2}"),
        ("/labels", "/labels.json"),
        ("/playground?term=(λx.x x) (λy.y)", "/playground.json?term=(λx.x x) (λy.y)"),
    ]


def matches(row, f: dict) -> bool:
    if f.get("correct") == "right" and not row["exact"] or f.get("correct") == "wrong" and row["exact"]:
        return False
    if "iou_min" in f and not row["iou"] >= float(f["iou_min"]):
        return False
    if "iou_max" in f and not row["iou"] < float(f["iou_max"]):
        return False
    if "nf" in f and (row["gold"] == (0, 0)) != (f["nf"] == "1"):
        return False
    if "pred_nf" in f and (row["pred"] == (0, 0)) != (f["pred_nf"] == "1"):
        return False
    if "len_min" in f and row["len"] < int(f["len_min"]) or "len_max" in f and row["len"] > int(f["len_max"]):
        return False
    if "togo_min" in f and row["togo"] < int(f["togo_min"]) or "togo_max" in f and row["togo"] > int(f["togo_max"]):
        return False
    if "q" in f and f["q"] not in row["term"]:
        return False
    return True


SORT_KEYS = {
    "example": lambda r: r["id"], "iou": lambda r: (r["iou"], r["id"]),
    "-iou": lambda r: (-r["iou"], -r["id"]), "len": lambda r: (r["len"], r["id"]),
    "-len": lambda r: (-r["len"], -r["id"]), "togo": lambda r: (r["togo"], r["id"]),
    "-togo": lambda r: (-r["togo"], -r["id"]), "conf": lambda r: (r["conf"], r["id"]),
    "-conf": lambda r: (-r["conf"], -r["id"]),
}


def walk(client, params: dict) -> tuple[list[int], int]:
    """All example ids of a filter, following the 'next' cursors; and the reported total."""
    ids, total, after = [], None, None
    for _ in range(1000):
        r = client.get("/examples.json", params={**params, **({"after": after} if after else {})})
        assert r.status_code == 200, r.text
        d = r.json()
        total = d["total"] if total is None else total
        assert d["total"] == total
        ids += [row["example_id"] for row in d["rows"]]
        after = d["next"]
        if after is None:
            return ids, total
    raise AssertionError("pagination does not end")


def csrf(c, identity):
    return re.search(r'name="csrf" value="([0-9a-f]+)"', c.get(f"/traces/{identity}").text).group(1)
