"""examples/own_trainer.py (issue 15): a model in plain PyTorch that knows nothing of lambdascope's
trainer fills the dashboard through the Recorder. Run here on tiny sizes; every page over the
store it wrote."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from lambdascope.store import Checkpoint, Example, Run, open_store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "own_trainer.py"
TINY = ["--traces", "150", "--eval-traces", "6", "--seconds", "4", "--eval-every", "2", "--d-model", "16",
        "--layers", "1", "--heads", "2", "--batch", "16", "--threads", "1"]


def test_the_example_imports_no_part_of_lambdascopes_trainer():
    tree = ast.parse(EXAMPLE.read_text(encoding="utf-8"))
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.split(".")[0] in ("trainer", "app") for m in modules), modules
    assert "lambdascope" in modules and "torch" in modules


def test_the_example_trains_and_fills_every_page(tmp_path):
    from tests.app_store import make_client

    url = f"sqlite:///{tmp_path}/store.db"
    r = subprocess.run([sys.executable, str(EXAMPLE), "--db", url, "--run", "own", *TINY], cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=""), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "done: run 'own'" in r.stderr
    _, Session = open_store(url)
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == "own"))
        cks = list(s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step)))
        ident = s.scalar(select(Example.trace_identity).where(Example.eval_set_id == cks[-1].eval_set_id))
    assert run.status == "finished" and run.config["seconds"] == 4.0 and len(cks) >= 1
    assert cks[-1].metrics["source"]["offsets"] == "bos-tokens" and cks[-1].metrics["rollouts"] == 6
    c = make_client(url)
    for page in ("/", f"/runs/{run.id}", f"/checkpoints/{cks[-1].id}", f"/examples?ck={cks[-1].id}",
                 f"/traces/{ident}?ck={cks[-1].id}"):
        got = c.get(page)
        assert got.status_code == 200 and "<html" in got.text, (page, got.text[:300])
        twin = page.replace("?", ".json?", 1) if "?" in page else (page + ".json" if page != "/" else "/runs.json")
        assert c.get(twin).status_code == 200, twin
    curves = {cv["name"] for cv in c.get(f"/runs/{run.id}.json").json()["curves"]}
    assert {"loss", "lr", "tokens_per_s", "exact", "mean_iou"} <= curves, curves
    trace = c.get(f"/traces/{ident}.json?ck={cks[-1].id}").json()
    assert trace["rollout"] is not None and all(st["pred"] is not None for st in trace["steps"])
