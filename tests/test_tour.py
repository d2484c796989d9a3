"""The tour: the whole flow with tiny sizes, through the real command line and a real server.

generate -> check -> train (two evaluations) -> evaluate on training traces -> serve -> trace
page and compare page of the two checkpoints -> label a training trace -> export labels ->
train again: the labelled trace is left out of training."""

import json
import re
import signal
import subprocess
import sys
import time

import httpx
from sqlalchemy import select

from lambdascope.store import Checkpoint, Label, Run, open_store
from lambdascope.traces import read_traces
from trainer.data import Vocab, load_dataset, split_of
from tests.net import free_port

TINY = ["--n-layer", "1", "--n-head", "2", "--d-model", "16", "--d-ff", "32", "--threads", "1",
        "--batch-tokens", "1024", "--warmup-steps", "2", "--eval-traces", "10"]


def ls(*args, check=True, timeout=300):
    r = subprocess.run([sys.executable, "-m", "lambdascope.cli", *args], capture_output=True,
                       text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"lambdascope {' '.join(args)}\n{r.stderr[-3000:]}"
    return r



def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def test_tour(tmp_path):
    data, db = tmp_path / "traces.jsonl", f"sqlite:///{tmp_path}/store.db"
    ls("generate", str(data), "400", "--seed", "5", "--threads", "2")
    ls("check", str(data))
    ls("train", "--data", str(data), "--db", db, "--run-name", "first", "--out-dir",
       str(tmp_path / "first"), "--steps", "6", "--eval-every", "3", *TINY)
    engine, Session = open_store(db)
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == "first"))
        cks = s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step)).all()
        assert run.status == "finished" and [c.step for c in cks][-2:] == [3, 6]
        a, b = cks[-2].id, cks[-1].id
        ck_path = cks[-1].path

    # a trace of the training split, evaluated by name so it shows on the dashboard
    train_trace = next(tr for tr in read_traces([data]) if split_of(tr.identity, 0.02, 0.02) == "train")
    one = tmp_path / "one.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    one.write_text("\n".join(lines[r.line - 1] for r in train_trace.records) + "\n", encoding="utf-8")
    ls("evaluate", ck_path, "--data", str(one), "--db", db, "--name", "on-train")

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "lambdascope.cli", "serve", "--db", db,
                               "--port", str(port), "--log-level", "warning"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/")
        with httpx.Client(base_url=base, timeout=20) as c:
            page = c.get(f"/traces/{train_trace.identity}")
            assert page.status_code == 200 and 'hl hl-gold' in page.text
            twin = c.get(f"/traces/{train_trace.identity}.json").json()
            assert [x["term"] for x in twin["steps"]] == [r.term for r in train_trace.records]
            cmp = c.get("/compare", params={"a": a, "b": b})
            assert cmp.status_code == 200
            counts = c.get("/compare.json", params={"a": a, "b": b}).json()
            assert counts["a"]["id"] == a and counts["b"]["id"] == b
            token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
            r = c.post("/labels", data={"csrf": token, "identity": train_trace.identity, "step": "",
                                        "category": "bad_gold", "note": "tour: leave me out"},
                       headers={"Origin": base}, follow_redirects=False)
            assert r.status_code == 303, r.text
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)

    export = tmp_path / "labels.jsonl"
    ls("labels", "export", str(export), "--db", db)
    exported = [json.loads(x) for x in export.read_text(encoding="utf-8").splitlines()]
    assert [(x["trace_identity"], x["note"]) for x in exported] == [(train_trace.identity, "tour: leave me out")]

    ls("train", "--data", str(data), "--db", db, "--run-name", "second", "--out-dir",
       str(tmp_path / "second"), "--steps", "2", "--eval-every", "2", *TINY)
    with Session() as s:
        second = s.scalar(select(Run).where(Run.name == "second"))
        assert second.validation["labelled_traces_excluded"] == 1
        labelled = set(s.scalars(select(Label.trace_identity)))
    # the same split and exclusion the trainer used: the trace is not among the training examples
    ds = load_dataset([data], Vocab(), exclude=labelled)
    assert train_trace.identity not in set(ds.train.traces)
    ds_all = load_dataset([data], Vocab())
    assert train_trace.identity in set(ds_all.train.traces)
    engine.dispose()
