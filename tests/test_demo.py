"""`lambdascope demo`: data, background training and the dashboard in one command; Ctrl-C (or
SIGTERM) stops both cleanly and a second run continues the same run."""

import signal
import subprocess
import sys
import time

import httpx
from sqlalchemy import select

from lambdascope.store import Label, Run, open_store
from tests.net import free_port

TINY = ["--", "--n-layer", "1", "--n-head", "2", "--d-model", "16", "--d-ff", "32", "--threads", "1",
        "--batch-tokens", "1024", "--warmup-steps", "2", "--eval-traces", "10"]



def start_demo(tmp_path, port):
    return subprocess.Popen(
        [sys.executable, "-m", "lambdascope.cli", "demo", "--traces", "300", "--data",
         str(tmp_path / "data" / "demo.jsonl"), "--runs-dir", str(tmp_path / "runs"), "--port",
         str(port), "--minutes", "5", "--eval-every", "3", *TINY],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(base, newer_than=-1, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            runs = httpx.get(base + "/runs.json", timeout=5).json()["runs"]
            ck = runs[0]["latest_checkpoint"] if runs else None
            if ck and ck["step"] > newer_than:
                return runs[0], ck
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError("no checkpoint appeared")


def trainer_running(tmp_path) -> bool:
    out = subprocess.run(["pgrep", "-f", f"train --data {tmp_path}"], capture_output=True, text=True)
    return bool(out.stdout.strip())


def test_demo_serves_live_training_and_stops_cleanly(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    demo = start_demo(tmp_path, port)
    try:
        run, ck = wait_for_checkpoint(base)
        assert run["name"] == "demo" and run["status"] == "running"
        assert httpx.get(f"{base}/runs/{run['id']}", timeout=10).status_code == 200
        ex = httpx.get(f"{base}/examples.json", params={"ck": ck["id"]}, timeout=10).json()
        ident = ex["rows"][0]["trace_identity"]
        page = httpx.get(f"{base}/traces/{ident}", params={"ck": ck["id"]}, timeout=10)
        assert page.status_code == 200 and "hl-" in page.text
    finally:
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=90)
    assert demo.returncode == 0, out
    assert "dashboard: http://127.0.0.1:" in out and "trainer stopped with its state saved" in out
    assert not trainer_running(tmp_path)
    # nothing half-written, and the store is not locked
    assert not list((tmp_path / "runs").rglob("*.tmp*"))
    assert (tmp_path / "runs" / "peak.json").is_file()  # measured once, for the MFU curve
    engine, Session = open_store(f"sqlite:///{tmp_path}/runs/demo.db")
    with Session() as s:
        assert s.scalar(select(Run)).status == "stopped"
        s.add(Label(trace_identity=ident, category="other", note="store is writable"))
        s.commit()
    engine.dispose()

    # again: it continues the same run from its checkpoint; SIGTERM stops it like Ctrl-C
    demo = start_demo(tmp_path, port)
    try:
        run2, ck2 = wait_for_checkpoint(base, newer_than=ck["step"])
        assert run2["id"] == run["id"]
    finally:
        demo.send_signal(signal.SIGTERM)
        out, _ = demo.communicate(timeout=90)
    assert "using the existing data set" in out and "continuing training" in out
    assert not trainer_running(tmp_path)
