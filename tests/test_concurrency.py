"""Concurrency: the trainer's StoreWriter inserting evaluations while 8 readers and 2 labellers
use a real `lambdascope serve` on 127.0.0.1 (SQLite, WAL): no errors, no "database is locked",
no half-visible evaluation, and every label written is read back at once and exported exactly
once. bench/bench_concurrency.py runs the full 16 readers + 2 labellers for 60 s."""

from tests.app_store import build_small_store
from tests.concurrency_harness import run_load, summary


def test_writer_readers_and_labellers_at_once(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    build_small_store(url, n_traces=40)
    o = run_load(url, readers=8, labellers=2, seconds=6, eval_every=0.5, workdir=tmp_path)
    report = summary(o) + "\n" + o.table()
    r = o.results
    assert r.errors == [], report + "\n" + "\n".join(r.errors[:10])
    assert o.server_log_errors == [], report + "\n" + "\n".join(o.server_log_errors[:10])
    assert o.writer["error"] is None, report
    # the writer really wrote while the clients read: several evaluations, seen by the readers
    assert o.writer["written"]["evaluations"] >= 4 and o.writer["written"]["metric_points"] > 100, report
    assert r.whole_evaluations_checked > 0 and len(r.checkpoints_seen) >= 3, report
    # every label written was read back at once, and is in the export exactly once, as typed
    assert len(r.labels_written) >= 10, report
    assert r.labels_read_back == len(r.labels_written), report
    assert o.missing_labels() == [], report
    assert sum(len(x) for k, x in r.latencies.items() if k not in ("label POST", "label read-back")) > 100, report
