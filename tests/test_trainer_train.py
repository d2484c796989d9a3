"""trainer.train and the command line: tiny runs against a temporary store."""

import time

import pytest
import torch
from sqlalchemy import func, select

from lambdascope.cli import main
from lambdascope.store import Checkpoint, DataProblem, Example, Label, MetricPoint, Prediction, Rollout, Run, open_store
from lambdascope.terms import parse, redex_spans
from lambdascope.traces import trace_identity
from trainer.config import TrainConfig, TrainError
from trainer.data import split_of
from trainer.checkpoints import checkpoint_files
from trainer.train import train

from .trainer_helpers import TINY, trace_of, write_generated, write_records


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "traces.jsonl"
    traces = write_generated(path, 120, seed=11)
    return path, traces


def config(tmp_path, data_path, name="r", **kw):
    args = dict(TINY, data=[str(data_path)], db=str(tmp_path / "store.db"), run_name=name,
                out_dir=str(tmp_path / name), steps=6, eval_every="3", peak_file=str(tmp_path / "none.json"))
    args.update(kw)
    return TrainConfig(**args)


def session(tmp_path):
    _, Session = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    return Session()


def test_a_run_records_checkpoints_predictions_rollouts_and_curves(tmp_path, data):
    path, _ = data
    summary = train(config(tmp_path, path))
    assert summary["steps"] == 6 and summary["tokens"] > 0 and 0 <= summary["padding_fraction"] <= 0.1
    with session(tmp_path) as s:
        run = s.scalar(select(Run).where(Run.name == "r"))
        assert run.status == "finished" and run.validation["invalid_records"] == 0
        assert run.config["model"]["d_model"] == 16 and run.data_hash
        cks = s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id).order_by(Checkpoint.step)).all()
        assert [c.step for c in cks] == [3, 6]
        n_examples = run.validation["eval_examples"]
        for c in cks:
            assert torch.load(c.path, weights_only=True)["step"] == c.step
            assert s.scalar(select(func.count()).select_from(Prediction).where(Prediction.checkpoint_id == c.id)) == n_examples
            assert s.scalar(select(func.count()).select_from(Rollout).where(Rollout.checkpoint_id == c.id)) == run.validation["eval_traces"]
            assert 0 <= c.metrics["exact"] <= 1 and "rollout_success" in c.metrics and "nf_f1" in c.metrics
        names = set(s.scalars(select(MetricPoint.name).where(MetricPoint.run_id == run.id)))
        assert {"loss", "lr", "tokens_per_s", "exact", "rollout_success", "val_loss"} <= names
        # predictions are character spans inside their terms: normal form, or start < end <= length
        rows = s.execute(select(Prediction.pred_start, Prediction.pred_end, Example.term_len)
                         .join(Example, Example.id == Prediction.example_id)).all()
        assert rows and all((a, b) == (0, 0) or 0 <= a < b <= n for a, b, n in rows)


def test_too_many_invalid_records_stop_the_run_before_training(tmp_path, data):
    path, traces = data
    lines = path.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.jsonl"
    n_bad = len(lines) // 20  # 5%
    bad_at = set(range(0, len(lines), len(lines) // n_bad))
    broken.write_text("\n".join("{oops" if i in bad_at else x for i, x in enumerate(lines)) + "\n")
    with pytest.raises(TrainError, match="above max_invalid"):  # the library names the field
        train(config(tmp_path, broken, name="bad"))
    with session(tmp_path) as s:
        run = s.scalar(select(Run).where(Run.name == "bad"))
        assert run.status == "failed" and "invalid" in run.message
        assert run.validation["invalid_records"] == len(bad_at)
        probs = s.scalars(select(DataProblem).where(DataProblem.run_id == run.id).order_by(DataProblem.line)).all()
        assert [p.line for p in probs if p.reason == "bad_json"] == sorted(i + 1 for i in bad_at)
        assert s.scalar(select(func.count()).select_from(Checkpoint)) == 0
    assert not checkpoint_files(tmp_path / "bad")
    # the same data under a higher limit trains, recording the problems all the same
    train(config(tmp_path, broken, name="lenient", max_invalid=0.1, steps=2, eval_every="2"))
    with session(tmp_path) as s:
        run = s.scalar(select(Run).where(Run.name == "lenient"))
        assert run.status == "finished"
        assert s.scalar(select(func.count()).select_from(DataProblem).where(DataProblem.run_id == run.id)) >= len(bad_at)


def test_cli_reports_max_invalid_as_one_line(tmp_path, data, capsys):
    path, _ = data
    broken = tmp_path / "broken.jsonl"
    broken.write_text(path.read_text(encoding="utf-8") + "{oops\n" * 50)
    rc = main(["train", "--data", str(broken), "--db", str(tmp_path / "store.db"), "--run-name", "c",
               "--out-dir", str(tmp_path / "c"), "--steps", "2", "--d-model", "16", "--n-layer", "1"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "lambdascope train: error:" in err and "above --max-invalid 1.00%" in err


def test_labelled_traces_are_not_trained_on(tmp_path, data, monkeypatch):
    import trainer.train as tt

    path, traces = data
    _, Session = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    labelled = {trace_identity(tr[0]["term"]) for tr in traces[:12]}
    with Session() as s, s.begin():
        for i, ident in enumerate(sorted(labelled)):
            s.add(Label(trace_identity=ident, step_k=None if i % 2 else 0, category="bad_gold", note="t"))
    trained_on: dict[str, set] = {}

    class Spy(tt.BatchStream):  # what the loop is given to train on
        def __init__(self, examples, *a, **k):
            trained_on[current] = set(examples.traces)
            super().__init__(examples, *a, **k)

    monkeypatch.setattr(tt, "BatchStream", Spy)
    for current, include in (("without", False), ("with", True)):
        train(config(tmp_path, path, name=current, steps=1, eval_every="1", include_labelled=include))
    in_train_split = {i for i in labelled if split_of(i, TINY["val_frac"], TINY["eval_frac"]) == "train"}
    not_eval = {i for i in labelled if split_of(i, TINY["val_frac"], TINY["eval_frac"]) != "eval"}
    assert in_train_split  # the test means something
    assert not labelled & trained_on["without"]
    assert labelled & trained_on["with"] == in_train_split
    with session(tmp_path) as s:
        v = {r.name: r.validation for r in s.scalars(select(Run))}
    assert v["without"]["labelled_traces_excluded"] == len(not_eval)
    assert v["without"]["train_examples"] < v["with"]["train_examples"]
    assert "labelled_traces_excluded" not in v["with"]


def test_metric_points_appear_while_training(tmp_path, data):
    path, _ = data
    seen_during = []

    def on_step(step, ctx):
        if step < 8:
            time.sleep(0.06)  # longer than metrics_every: the loop emits points as it goes
        if step == 8:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with session(tmp_path) as s:
                    n = s.scalar(select(func.count()).select_from(MetricPoint).where(
                        MetricPoint.run_id == ctx["run_id"], MetricPoint.name == "loss"))
                if n:
                    seen_during.append(n)
                    return
                time.sleep(0.05)

    train(config(tmp_path, path, name="live", steps=12, eval_every="100"), on_step=on_step)
    assert seen_during and seen_during[0] > 0


def test_resume_continues_a_killed_run(tmp_path, data):
    path, _ = data
    whole = train(config(tmp_path, path, name="whole", steps=8, eval_every="4"))

    class Killed(Exception):
        pass

    def kill(step, ctx):
        if step == 6:
            raise Killed

    with pytest.raises(Killed):
        train(config(tmp_path, path, name="killed", steps=8, eval_every="4"), on_step=kill)
    assert [p.name for p in checkpoint_files(tmp_path / "killed")] == ["ckpt_0000004.pt"]
    resumed = train(TrainConfig(data=[str(path)], db=str(tmp_path / "store.db"), out_dir=str(tmp_path / "killed"),
                                resume=True, threads=1))
    assert resumed["steps"] == 8 and resumed["run_id"] != whole["run_id"]
    a = torch.load(whole["checkpoint"], weights_only=True)
    b = torch.load(resumed["checkpoint"], weights_only=True)
    assert a["tokens"] == b["tokens"]
    for k in a["model"]:  # the same batches, schedule and optimiser state: the same weights
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)
    with session(tmp_path) as s:
        run = s.scalar(select(Run).where(Run.name == "killed"))
        assert run.status == "finished" and run.id == resumed["run_id"]
        assert [c.step for c in run.checkpoints] == [4, 8]
        assert max(s.scalars(select(MetricPoint.step).where(MetricPoint.run_id == run.id))) == 8


def test_ctrl_c_stops_after_the_step_saves_and_resumes(tmp_path, data):
    import os
    import signal

    path, _ = data

    def interrupt(step, ctx):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # handled at the end of the step, not inside it

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when started in the background (CI)
    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path, path, name="stopped", steps=8, eval_every="5"), on_step=interrupt)
    assert [p.name for p in checkpoint_files(tmp_path / "stopped")] == ["ckpt_0000003.pt"]
    with session(tmp_path) as s:
        run = s.scalar(select(Run).where(Run.name == "stopped"))
        assert run.status == "stopped" and "ckpt_0000003.pt" in run.message
    assert signal.getsignal(signal.SIGINT) is before  # handlers put back
    done = train(TrainConfig(data=[str(path)], db=str(tmp_path / "store.db"), out_dir=str(tmp_path / "stopped"),
                             resume=True, threads=1))
    assert done["steps"] == 8


def test_resume_without_a_checkpoint_is_a_usage_error(tmp_path, data, capsys):
    path, _ = data
    rc = main(["train", "--data", str(path), "--db", str(tmp_path / "s.db"), "--resume",
               "--out-dir", str(tmp_path / "nothing")])
    assert rc == 2 and "no checkpoint" in capsys.readouterr().err


def test_evaluate_stores_a_named_evaluation(tmp_path, data, capsys):
    path, _ = data
    summary = train(config(tmp_path, path, name="base", steps=3, eval_every="3"))
    hand = tmp_path / "hand.jsonl"
    terms = ["(λx.x x) (λy.y)", "f ((λx.x) y)", "λz.z ((λx.x) z)", "a b"]
    write_records(hand, [trace_of(t, f"h{i}") for i, t in enumerate(terms)])
    other_db = tmp_path / "other.db"  # a store that has never seen the run
    for db in (tmp_path / "store.db", other_db):
        rc = main(["evaluate", summary["checkpoint"], "--data", str(hand), "--db", str(db), "--name", "by hand"])
        assert rc == 0
        with session(db.parent) if db.name == "store.db" else open_store(f"sqlite:///{db}")[1]() as s:
            ck = s.scalar(select(Checkpoint).where(Checkpoint.name == "by hand"))
            assert ck is not None and ck.step == 3 and ck.run.name == "base"
            n_steps = sum(len(trace_of(t, "x")) for t in terms)
            assert s.scalar(select(func.count()).select_from(Prediction).where(Prediction.checkpoint_id == ck.id)) == n_steps
            assert s.scalar(select(func.count()).select_from(Rollout).where(Rollout.checkpoint_id == ck.id)) == len(terms)
            assert ck.metrics["examples"] == n_steps
            assert ck.metrics["decode"] == "free"  # as the run decoded
    assert "by hand" in capsys.readouterr().err


def test_evaluate_with_the_redex_decoder_stores_only_redexes_and_normal_forms(tmp_path, data, capsys):
    """``evaluate --decode redex`` of a freely decoding run's checkpoint: every stored prediction is
    normal form or a redex of its term, and each evaluation's metrics say which decoder made it."""
    path, _ = data
    summary = train(config(tmp_path, path, name="base", steps=3, eval_every="3"))
    hand = tmp_path / "hand.jsonl"
    terms = ["(λx.x x) (λy.y)", "f ((λx.x) y)", "λz.z ((λx.x) z)", "(λx.λy.x y) (λz.z) w"]
    write_records(hand, [trace_of(t, f"h{i}") for i, t in enumerate(terms)])
    db = tmp_path / "store.db"
    for decode in ("redex", "free"):
        assert main(["evaluate", summary["checkpoint"], "--data", str(hand), "--db", str(db),
                     "--name", decode, "--decode", decode]) == 0
        assert f"({decode} decoding" in capsys.readouterr().err
    with session(tmp_path) as s:
        spans = {}
        for decode in ("redex", "free"):
            ck = s.scalar(select(Checkpoint).where(Checkpoint.name == decode))
            assert ck.metrics["decode"] == decode
            spans[decode] = s.execute(select(Example.term, Prediction.pred_start, Prediction.pred_end).join(
                Prediction, Prediction.example_id == Example.id).where(Prediction.checkpoint_id == ck.id)).all()
        for term, a, b in spans["redex"]:
            assert (a, b) == (0, 0) or (a, b) in redex_spans(parse(term))
        # a 3-step model points anywhere: the free decoder's spans are not all redexes (else this
        # test could not tell the decoders apart)
        assert any((a, b) != (0, 0) and (a, b) not in redex_spans(parse(term)) for term, a, b in spans["free"])


@pytest.mark.parametrize("argv", [
    ["train", "--data", "x.jsonl", "--steps", "0"],
    ["train", "--data", "x.jsonl", "--minutes", "-1"],
    ["train", "--data", "x.jsonl", "--steps", "3", "--minutes", "2"],
    ["train", "--data", "x.jsonl", "--max-invalid", "2"],
    ["train", "--data", "x.jsonl", "--eval-every", "soon"],
    ["train", "--data", "x.jsonl", "--device", "tpu"],
    ["train", "--data", "x.jsonl", "--decode", "parsed"],
    ["evaluate", "ckpt.pt"],
    ["evaluate", "ckpt.pt", "--data", "x.jsonl", "--decode", ""],
])
def test_bad_flags_exit_2_with_one_line(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0]


def test_missing_data_file_is_a_usage_error(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path / "nope.jsonl"), "--db", str(tmp_path / "s.db")])
    assert rc == 2 and "no such file" in capsys.readouterr().err


def test_configuration_errors_name_fields_in_the_library_and_flags_on_the_command_line(tmp_path, data, capsys):
    from trainer.config import ConfigError

    path, _ = data
    with pytest.raises(ConfigError) as e:
        train(config(tmp_path, path, name="x", run_name=None, out_dir=None, resume=True))
    assert str(e.value) == "resume needs run_name or out_dir to find the run"
    with pytest.raises(ConfigError, match="d_model 30 must split into n_head 4 heads of even width"):
        train(config(tmp_path, path, d_model=30, n_head=4))
    train(config(tmp_path, path, name="taken", steps=1, eval_every="1"))
    with pytest.raises(ConfigError, match="a run named 'taken' is already in the store: pass resume"):
        train(config(tmp_path, path, name="taken", out_dir=str(tmp_path / "elsewhere")))
    capsys.readouterr()
    for argv, message in [
        (["--resume"], "--resume needs --run-name or --out-dir to find the run"),
        (["--d-model", "30", "--n-head", "4"], "--d-model 30 must split into --n-head 4 heads of even width"),
        (["--run-name", "taken", "--out-dir", str(tmp_path / "again")],
         "a run named 'taken' is already in the store: pass --resume to continue it, or another --run-name"),
        (["--run-name", "taken", "--out-dir", str(tmp_path / "taken")], "already holds checkpoints: pass --resume"),
    ]:
        rc = main(["train", "--data", str(path), "--db", str(tmp_path / "store.db"), "--steps", "1", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("lambdascope train: error: "), (argv, err)
        assert message in err[0], (argv, err)


def test_the_trainer_and_the_dashboard_share_the_iou_bins_and_slices(tmp_path, data):
    """The checkpoint's stored histogram is the dashboard's, bin for bin (lambdascope.vocabulary)."""
    from app.summaries import compute_checkpoint_summary
    from lambdascope.vocabulary import slice_label

    path, _ = data
    train(config(tmp_path, path, name="bins"))
    with session(tmp_path) as s:
        for ck in s.scalars(select(Checkpoint)):
            shown = compute_checkpoint_summary(s, ck.id).as_dict()
            assert [b["n"] for b in shown["iou_histogram"]] == ck.metrics["iou_hist"]
            assert ck.metrics["length_bucket"] == shown["term_length_bucket"]
            stored = {k: v["n"] for k, v in ck.metrics["by_length"].items()}
            assert stored == {slice_label(b["lo"], b["hi"]): b["n"] for b in shown["by_term_length"]}


def test_a_run_decodes_with_its_decoder_and_keeps_it_when_resumed(tmp_path, data):
    """``train --decode redex``: its evaluations store only normal forms and redexes, its
    checkpoints say so (the dashboard's predictor decodes as the run did), and ``--resume``
    without the flag goes on with the run's decoder."""
    from trainer.checkpoints import read_checkpoint
    from trainer.predict import load_predictor

    path, _ = data
    first = train(config(tmp_path, path, name="rx", steps=3, eval_every="3", decode="redex"))
    again = train(config(tmp_path, path, name="rx", steps=6, eval_every="3", resume=True))
    for summary in (first, again):
        assert read_checkpoint(summary["checkpoint"])["train_config"]["decode"] == "redex"
    assert load_predictor(again["checkpoint"]).decode == "redex"
    assert load_predictor(again["checkpoint"], decode="free").decode == "free"
    with session(tmp_path) as s:
        cks = s.scalars(select(Checkpoint).join(Run).where(Run.name == "rx", Checkpoint.suite.is_(None))).all()
        assert sorted(c.step for c in cks) == [3, 6]
        assert all(c.metrics["decode"] == "redex" for c in cks)
        rows = s.execute(select(Example.term, Prediction.pred_start, Prediction.pred_end).join(
            Prediction, Prediction.example_id == Example.id).where(
            Prediction.checkpoint_id.in_([c.id for c in cks]))).all()
    assert rows
    for term, a, b in rows:
        assert (a, b) == (0, 0) or (a, b) in redex_spans(parse(term))
