"""Evaluation suites: `lambdascope suite make` writes each standard suite (past the caps where it
should be), deterministically; `train --suite` evaluates every suite at every evaluation, capped
once and reported; train_shape describes the training data."""

import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from lambdascope.cli import main
from lambdascope.commands.suites import make_suite
from lambdascope.generate import DEFAULT_MAX_LEN, DEFAULT_MAX_STEPS
from lambdascope.store import Checkpoint, EvalSet, Prediction, Rollout, Run, open_store
from lambdascope.suites import SUITE_NAMES
from trainer.config import TrainConfig
from trainer.train import train

from .trainer_helpers import TINY, write_generated


def lambdascope(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lambdascope.cli", *args], capture_output=True, text=True, **kw)


def traces_of(path):
    out: dict[str, list[dict]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        out.setdefault(r["trace_id"], []).append(r)
    return out


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    d = tmp_path_factory.mktemp("suites")
    made = {}
    for name in SUITE_NAMES:
        make_suite(name, d / f"{name}.jsonl", size=12, threads=2, quiet=True)
        made[name] = d / f"{name}.jsonl"
    return made


def test_each_suite_is_what_its_name_says(suites, tmp_path):
    for name, path in suites.items():
        traces = traces_of(path)
        assert len(traces) == 12, name
        assert main(["check", str(path)]) == 0, name
        longest = [max(len(r["term"]) for r in tr) for tr in traces.values()]
        steps = [tr[0]["steps_total"] for tr in traces.values()]
        if name == "longer":
            assert all(DEFAULT_MAX_LEN < n <= 2 * DEFAULT_MAX_LEN for n in longest)
        else:
            assert max(longest) <= DEFAULT_MAX_LEN, name
        if name == "deeper":
            assert all(DEFAULT_MAX_STEPS < n <= 2 * DEFAULT_MAX_STEPS for n in steps)
        else:
            assert max(steps) <= DEFAULT_MAX_STEPS, name
        if name in ("heldout", "longer", "deeper"):
            assert all(tid.split("-")[0].isdigit() for tid in traces)
        else:
            assert all(tid.startswith(f"{name}-") for tid in traces)
    # the held-out suite is not the training data's default seed
    train_file = tmp_path / "train.jsonl"
    assert lambdascope("generate", str(train_file), "12").returncode == 0
    assert not set(traces_of(train_file)) & set(traces_of(suites["heldout"]))


def test_suite_make_is_deterministic_and_relative_to_the_caps(suites, tmp_path):
    again = tmp_path / "deeper.jsonl"
    r = lambdascope("suite", "make", "deeper", str(again), "--size", "12", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert again.read_bytes() == suites["deeper"].read_bytes()
    assert "suite deeper: 12 traces" in r.stderr and "steps per trace" in r.stderr
    small = tmp_path / "longer40.jsonl"
    r = lambdascope("suite", "make", "longer", str(small), "--size", "5", "--train-max-len", "40")
    assert r.returncode == 0, r.stderr
    assert all(40 < max(len(x["term"]) for x in tr) <= 80 for tr in traces_of(small).values())


def test_suite_help_lists_every_suite():
    for args in (["suite", "--help"], ["suite", "make", "--help"]):
        r = lambdascope(*args)
        assert r.returncode == 0
        for name in SUITE_NAMES:
            assert f"\n  {name} " in r.stdout, (args, name)


@pytest.mark.parametrize("args, fragment", [
    (["suite", "make", "wider", "o.jsonl"], "unknown suite 'wider': choose one of heldout, longer, deeper"),
    (["suite", "make", "longer", "o.jsonl", "--size", "0"], "positive integer"),
    (["suite", "make", "longer", "o.jsonl", "--size", "2000000"], "--size"),
    (["suite", "make", "longer", "o.jsonl", "--train-max-len", "x"], "positive integer"),
])
def test_suite_make_errors_exit_2(tmp_path, args, fragment):
    r = lambdascope(*args, cwd=tmp_path)
    assert r.returncode == 2 and fragment in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.jsonl").exists()


# ---------------------------------------------------------------------------------------------
# training with suites


@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "traces.jsonl"
    write_generated(path, 120, seed=11)
    return path


def config(tmp_path, data_path, suites, name="r", **kw):
    args = dict(TINY, data=[str(data_path)], db=str(tmp_path / "store.db"), run_name=name,
                out_dir=str(tmp_path / name), steps=6, eval_every="3", peak_file=str(tmp_path / "none.json"),
                suites=[f"{n}={p}" for n, p in suites])
    args.update(kw)
    return TrainConfig(**args)


def test_every_evaluation_evaluates_every_suite_capped_and_reported(tmp_path, train_data, suites, capsys):
    chosen = [("church", suites["church"]), ("longer", suites["longer"])]
    summary = train(config(tmp_path, train_data, chosen, suite_share=0.01))
    assert "suites:" in capsys.readouterr().err
    _, Session = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == "r"))
        reported = run.validation["suites"]
        assert set(reported) == {"church", "longer"} and reported == summary["suites"]
        for name, path in chosen:
            rep = reported[name]
            assert rep["file"] == str(path) and rep["of"] == 12 and 1 <= rep["traces"] <= 12
            cks = s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.suite == name)
                            .order_by(Checkpoint.step)).all()
            assert [c.step for c in cks] == [3, 6]
            es_ids = {c.eval_set_id for c in cks}
            assert len(es_ids) == 1 and es_ids != {run.eval_set_id}  # the same traces at every step
            for c in cks:
                assert c.metrics["suite"] == name and c.metrics["rollouts"] == rep["traces"]
                assert s.scalar(select(func.count()).select_from(Prediction)
                                .where(Prediction.checkpoint_id == c.id)) == rep["steps"]
                assert s.scalar(select(func.count()).select_from(Rollout)
                                .where(Rollout.checkpoint_id == c.id)) == rep["traces"]
        # the cap: at a 1 % share, each suite is cut to what fits (at least one trace)
        plan = run.validation["suite_cap"]
        assert plan["share"] == 0.01 and plan["evaluations"] == 2
        assert reported["longer"]["traces"] < 12
        main_cks = s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.suite.is_(None))).all()
        assert [c.step for c in main_cks] == [3, 6]
        assert s.scalar(select(func.count()).select_from(EvalSet)) == 3
        shape = run.validation["train_shape"]
        assert sum(shape["length"]["counts"]) == run.validation["train_examples"]
        assert len(shape["length"]["counts"]) <= 60 and len(shape["steps"]["counts"]) <= 60
        assert shape["length"]["max"] // shape["length"]["width"] == len(shape["length"]["counts"]) - 1
        assert sum(shape["steps"]["counts"]) == run.validation["train_split_traces"] - run.validation.get(
            "labelled_traces_excluded", 0)
    assert summary["suite_minutes"] > 0


def test_a_resumed_run_keeps_its_suites_and_caps_without_duplicates(tmp_path, train_data, suites):
    chosen = [("church", suites["church"])]

    class Killed(Exception):
        pass

    def kill(step, ctx):
        if step == 4:
            raise Killed

    with pytest.raises(Killed):
        train(config(tmp_path, train_data, chosen, name="k", steps=6), on_step=kill)
    train(TrainConfig(data=[str(train_data)], db=str(tmp_path / "store.db"), out_dir=str(tmp_path / "k"),
                      resume=True, threads=1))
    _, Session = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    with Session() as s:
        run = s.scalar(select(Run).where(Run.name == "k"))
        assert run.config["train"]["suites"] == [f"church={suites['church']}"]
        cks = s.scalars(select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.suite == "church")
                        .order_by(Checkpoint.step)).all()
        assert [c.step for c in cks] == [3, 6] and len({c.eval_set_id for c in cks}) == 1


def test_a_bad_suite_file_names_its_file_and_line(tmp_path, train_data, suites, capsys):
    bad = tmp_path / "bad.jsonl"
    lines = suites["bool"].read_text(encoding="utf-8").splitlines()
    lines[2] = "{oops"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc = main(["train", "--data", str(train_data), "--db", str(tmp_path / "s.db"), "--out-dir", str(tmp_path / "b"),
               "--steps", "1", "--suite", f"bool={bad}", "--max-invalid", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}:3: bad_json" in err and "suite bool" in err, err
    rc = main(["train", "--data", str(train_data), "--db", str(tmp_path / "s.db"), "--out-dir", str(tmp_path / "b"),
               "--steps", "1", "--suite", f"bool={tmp_path / 'none.jsonl'}"])
    assert rc == 2 and "none.jsonl: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("value, fragment", [("church", "expected NAME=FILE"), ("=x.jsonl", "suite name"),
                                             ("a b=x.jsonl", "suite name"), ("church=", "no file")])
def test_a_bad_suite_flag_is_a_one_line_usage_error(value, fragment, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "x.jsonl", "--suite", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and fragment in err[0], err


@pytest.mark.parametrize("extra, fragment", [
    (["--suite-share", "2"], "--suite-share: expected a fraction between 0 and 1, got '2'"),
    (["--suite-share", "0"], "--suite-share: expected a fraction above 0 and at most 1, got 0"),
    (["--suite", "church=a.jsonl", "--suite", "church=b.jsonl"], "--suite: a suite name is given twice"),
    # the length options of the model (docs/DESIGN.md, "Length generalisation")
    (["--position-scale", "0.5"], "--position-scale: expected a number >= 1, got '0.5'"),
    (["--depth-rotary", "-1"], "--depth-rotary: expected an integer >= 0, got '-1'"),
    (["--depth-rotary", "8", "--n-head", "8"], "--depth-rotary 8 must leave positions some of each head's 8"),
    (["--end-depth-bias", "-1"], "--end-depth-bias: expected an integer >= 0, got '-1'"),
    (["--end-depth-bias", "65"], "--end-depth-bias: 0 (off) to 64, got 65"),
    (["--end-space-bias", "-1"], "--end-space-bias: expected an integer >= 0, got '-1'"),
    (["--end-space-bias", "17"], "--end-space-bias: 0 (off) to 16, got 17"),
])
def test_a_bad_suite_share_or_a_repeated_name_is_refused_before_anything_starts(tmp_path, train_data, extra,
                                                                                fragment, capsys):
    args = ["train", "--data", str(train_data), "--db", str(tmp_path / "s.db"), "--out-dir", str(tmp_path / "o"),
            "--steps", "1", *extra]
    try:
        rc = main(args)
    except SystemExit as e:  # a flag's own type: argparse's usage error
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err, err
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "o").exists()  # nothing was started


def test_train_help_explains_suites():
    r = lambdascope("train", "--help")
    assert "--suite NAME=FILE" in r.stdout and "--suite-share" in r.stdout and "suite make" in r.stdout
