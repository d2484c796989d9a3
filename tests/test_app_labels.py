"""Labels: written from the trace page, read by the filters and the queue, exported and
imported as JSONL and CSV (through HTTP and `lambdascope labels`), round-tripping exactly."""

import json
import re

from lambdascope.cli import main
from tests.app_helpers import csrf
from tests.app_store import build_small_store, make_client


def add(c, identity, step="", category="bad_gold", note="", **extra):
    r = c.post("/labels", data={"csrf": csrf(c, identity), "identity": identity, "step": str(step),
                                "category": category, "note": note, **extra}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r


def test_label_a_trace_and_a_step(fresh_client, fresh):
    c, tr = fresh_client, fresh.traces[2]
    add(c, tr.identity, note="the whole trace is odd")
    add(c, tr.identity, step=1, category="model_error", note="λ — step one\nsecond line")
    d = c.get(f"/traces/{tr.identity}.json").json()
    got = [(lb["step_k"], lb["category"], lb["note"]) for lb in d["labels"]]
    assert got == [(None, "bad_gold", "the whole trace is odd"),
                   (1, "model_error", "λ — step one\nsecond line")]
    labels = c.get("/labels.json").json()
    assert labels["total"] == 2 and labels["counts"] == {"bad_gold": 1, "model_error": 1}
    assert labels["labels"][0]["term"] == tr.records[0].term  # the first term, for people
    assert c.get("/labels.json?category=model_error").json()["labels"][0]["step_k"] == 1
    html = c.get("/labels").text
    assert "λ — step one" in html and tr.identity[:8] in html


def test_bad_labels_are_refused(fresh_client, fresh):
    c, tr = fresh_client, fresh.traces[0]
    token = csrf(c, tr.identity)
    for data in ({"identity": tr.identity, "category": "nonsense"},
                 {"identity": "0" * 16, "category": "other"},  # not a trace of this store
                 {"identity": tr.identity, "category": "other", "step": "999"},
                 {"identity": tr.identity, "category": "other", "step": "x"},
                 {"identity": tr.identity, "category": "other", "note": "n" * 5000}):
        r = c.post("/labels", data={"csrf": token, **data}, follow_redirects=False)
        assert 400 <= r.status_code < 500, data
    assert c.get("/labels.json").json()["total"] == 0


def test_htmx_label_post_returns_the_labels_block(fresh_client, fresh):
    c, tr = fresh_client, fresh.traces[1]
    r = c.post("/labels", data={"csrf": csrf(c, tr.identity), "identity": tr.identity, "step": "0",
                                "category": "interesting", "ck": str(fresh.ck1)},
               headers={"HX-Request": "true", "HX-Target": "labels"})
    assert r.status_code == 200 and r.text.lstrip().startswith('<section id="labels"')
    assert "interesting" in r.text and "<html" not in r.text
    # in the queue, htmx is sent on to the next item
    r = c.post("/labels", data={"csrf": csrf(c, tr.identity), "identity": tr.identity, "step": "0",
                                "category": "other", "queue": "1", "next": f"/queue?ck={fresh.ck1}&after=5"},
               headers={"HX-Request": "true", "HX-Target": "labels"})
    assert r.status_code == 204 and r.headers["HX-Redirect"] == f"/queue?ck={fresh.ck1}&after=5"


def test_labelled_filter_and_queue_follow_new_labels(fresh_client, fresh):
    c, ck = fresh_client, fresh.ck1
    assert c.get(f"/examples.json?ck={ck}&labelled=1").json()["total"] == 0
    all_n = c.get(f"/examples.json?ck={ck}&labelled=0").json()["total"]
    q = c.get(f"/queue.json?ck={ck}").json()
    first = q["next"]
    add(c, first["identity"], step=first["step_k"], category="model_error")
    assert c.get(f"/examples.json?ck={ck}&labelled=1").json()["total"] == 1  # the count cache follows
    assert c.get(f"/examples.json?ck={ck}&labelled=0").json()["total"] == all_n - 1
    q2 = c.get(f"/queue.json?ck={ck}").json()
    assert q2["remaining"] == q["remaining"] - 1 and q2["next"] != first
    tr = fresh.traces[5]
    add(c, tr.identity)  # a whole-trace label marks every step
    assert c.get(f"/examples.json?ck={ck}&labelled=1").json()["total"] == 1 + len(tr.records)


def test_export_import_round_trip(tmp_path, fresh_client, fresh):
    c = fresh_client
    tricky = ['quote " comma , newline\nend', "λx.x <script>", "", "=1+1", "tab\tand ünïcode"]
    for i, note in enumerate(tricky):
        tr = fresh.traces[i]
        add(c, tr.identity, step=i % 2 if i % 3 else "", category=("bad_gold", "model_error",
                                                                      "interesting", "other")[i % 4], note=note)
    http = {fmt: c.get(f"/labels/export.{fmt}") for fmt in ("jsonl", "csv")}
    assert http["jsonl"].headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in http["csv"].headers["content-disposition"]
    records = [json.loads(line) for line in http["jsonl"].text.splitlines()]
    assert [r["note"] for r in records] == tricky
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"labels.{fmt}"
        assert main(["labels", "export", str(out), "--db", fresh.url]) == 0
        assert out.read_bytes() == http[fmt].content
        # into a store that has none of these labels (nor these traces), and back out
        other = build_small_store(f"sqlite:///{tmp_path}/other-{fmt}.db", n_traces=5, seed=99)
        assert main(["labels", "import", str(out), "--db", other.url]) == 0
        again = tmp_path / f"again.{fmt}"
        assert main(["labels", "export", str(again), "--db", other.url, "--format", fmt]) == 0
        assert again.read_bytes() == out.read_bytes()
        # importing the same file again adds nothing
        assert main(["labels", "import", str(out), "--db", other.url]) == 0
        assert make_client(other.url).get("/labels.json").json()["total"] == len(tricky)


def test_import_rejects_a_bad_file_whole(tmp_path, fresh, capsys):
    good = {"trace_identity": fresh.traces[0].identity, "step_k": None, "category": "other",
            "note": "fine", "term": "", "created_at": "2026-01-01T00:00:00.000000"}
    bad_files = {
        "bad.jsonl": json.dumps(good) + "\n{not json\n",
        "bad2.jsonl": json.dumps(good) + "\n" + json.dumps({**good, "category": "nope"}) + "\n",
        "bad3.jsonl": json.dumps({**good, "step_k": -4}) + "\n",
        "bad4.jsonl": json.dumps({**good, "created_at": "yesterday"}) + "\n",
        "bad.csv": "trace_identity,step_k,category,note,term,created_at\nabc,x,other,,,\n",
        "bad2.csv": "who,what\n1,2\n",
    }
    for name, content in bad_files.items():
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        assert main(["labels", "import", str(path), "--db", fresh.url]) == 2, name
        err = capsys.readouterr().err
        assert "line" in err, (name, err)
    assert main(["labels", "import", str(tmp_path / "missing.jsonl"), "--db", fresh.url]) == 2
    assert make_client(fresh.url).get("/labels.json").json()["total"] == 0


def test_export_then_import_into_a_new_empty_store_round_trips_exactly(tmp_path, fresh_client, fresh):
    """`lambdascope labels export` -> `import` into a store that does not exist yet -> `export`
    gives the same bytes, in both formats: notes with every awkward character, whole-trace and
    step labels, the creation times to the microsecond."""
    c = fresh_client
    notes = ["lone\rcarriage return", "  spaces kept  ", "n" * 4000, 'a "quoted", comma', "", "λ\u2028\U0001F600",
             "<script>alert(1)</script>", "line one\nline two\n"]
    for i, note in enumerate(notes):
        add(c, fresh.traces[i % 3].identity, step="" if i % 2 else 1,
            category=("bad_gold", "model_error", "interesting", "other")[i % 4], note=note)
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"labels.{fmt}"
        assert main(["labels", "export", str(out), "--db", fresh.url]) == 0
        empty = tmp_path / f"new-{fmt}" / "store.db"  # neither the file nor its folder exists
        assert main(["labels", "import", str(out), "--db", str(empty)]) == 0
        again = tmp_path / f"again.{fmt}"
        assert main(["labels", "export", str(again), "--db", str(empty)]) == 0
        assert again.read_bytes() == out.read_bytes(), fmt
        # and a second import adds nothing
        assert main(["labels", "import", str(out), "--db", str(empty)]) == 0
        third = tmp_path / f"third.{fmt}"
        assert main(["labels", "export", str(third), "--db", str(empty)]) == 0
        assert third.read_bytes() == out.read_bytes(), fmt
    text = (tmp_path / "labels.jsonl").read_text(encoding="utf-8")
    exported = [json.loads(line) for line in text.split("\n") if line]
    assert [r["note"] for r in exported] == [n.replace("\r\n", "\n") for n in notes]


def test_labels_page_walks_every_label_a_page_at_a_time(fresh_client, fresh):
    c = fresh_client
    made = []
    for i in range(7):
        tr = fresh.traces[i % 4]
        category = "interesting" if i % 2 else "other"
        add(c, tr.identity, step=i % 2, category=category, note=f"note {i}")
        made.append((f"note {i}", category))
    newest_first = [note for note, _ in reversed(made)]
    seen, after, pages = [], None, 0
    while True:
        d = c.get("/labels.json", params={"limit": 3, **({"after": after} if after else {})}).json()
        assert d["total"] == 7 and len(d["labels"]) <= 3
        seen += [lb["note"] for lb in d["labels"]]
        pages += 1
        after = d["next"]
        if after is None:
            break
    assert seen == newest_first and pages == 3
    # one category, paged the same way
    d = c.get("/labels.json?category=interesting&limit=2").json()
    rest = c.get("/labels.json", params={"category": "interesting", "limit": 2, "after": d["next"]}).json()
    assert [lb["note"] for lb in d["labels"] + rest["labels"]] == \
        [note for note, cat in reversed(made) if cat == "interesting"]
    assert rest["next"] is None
    # the page's Older link leads to the next page; the first page has no Newest link
    html = c.get("/labels?limit=3").text
    older = re.search(r'href="([^"]+)" data-next rel="next">older', html).group(1).replace("&amp;", "&")
    assert "newest</a>" not in html and "limit=3" in older
    page2 = c.get(older).text
    assert "note 3" in page2 and "note 6" not in page2 and "⇤ newest" in page2
    # past the oldest label (its last one deleted meanwhile): said so, with the way back
    oldest = c.get("/labels.json?limit=7").json()["labels"][-1]
    after = f"{oldest['created_at']},{oldest['id']}"
    html = c.get("/labels", params={"after": after}).text
    assert "No older labels" in html and "⇤ newest" in html and "yet" not in html


def test_labels_paging_refuses_bad_parameters(fresh_client, fresh):
    c = fresh_client
    add(c, fresh.traces[0].identity, note="one")
    for params, message in (({"after": "yesterday"}, "after: expected"),
                            ({"after": "2026-01-01T00:00:00,0"}, "after: expected"),
                            ({"after": "2026-01-01T00:00:00+05:00,3"}, "after: expected"),
                            ({"limit": "0"}, "limit: 1 to 500"), ({"limit": "many"}, "limit: expected"),
                            ({"page": "2"}, "page: this list is paged")):
        for path in ("/labels", "/labels.json"):
            r = c.get(path, params=params)
            assert r.status_code == 400 and message in r.text, (path, params, r.text[:200])
    assert c.get("/labels.json").json()["total"] == 1
