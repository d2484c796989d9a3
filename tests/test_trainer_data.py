"""trainer.data: vocabulary and offsets, the split by trace identity, invalid records, batches."""

import json
import random

import pytest

from lambdascope.spans import token_to_char_span
from lambdascope.terms import parse, redex_span
from lambdascope.traces import trace_identity
from trainer.data import (BatchStream, Examples, Vocab, collate, load_dataset, make_batches,
                          padding_fraction, split_of)

from .trainer_helpers import trace_of, write_generated, write_records

VOCAB = Vocab()


def decode(ids: bytes) -> str:
    return "".join(VOCAB.itos[i] for i in ids[1:-1])


def test_vocab_and_the_seed_offset_example():
    ids = VOCAB.encode("λx.x")
    assert ids[0] == VOCAB.bos_id and ids[-1] == VOCAB.eos_id and len(ids) == len("λx.x") + 2
    assert decode(ids) == "λx.x"
    ex = Examples()
    ex.add(VOCAB, "λx.x", (1, 2))
    assert ex.spans == [(2, 3)]  # token span: both ends past BOS
    s, e = token_to_char_span(*ex.spans[0])
    assert (s, e) == (1, 2) and "λx.x"[s:e] == "x"
    ex.add(VOCAB, "x", (0, 0))
    assert ex.spans[1] == (0, 0)  # normal form at BOS
    assert VOCAB.encode("x?")[2] == VOCAB.unk_id
    assert Vocab(VOCAB.itos).itos == VOCAB.itos  # rebuilt from a checkpoint's list


def test_collate_pads_and_masks():
    x, mask = collate([b"\x01\x05\x02", b"\x01\x05\x06\x07\x02"])
    assert x.shape == (2, 5) and x[0].tolist() == [1, 5, 2, 0, 0]
    assert mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]


def test_split_is_by_identity_and_nothing_leaks(tmp_path):
    path = tmp_path / "t.jsonl"
    traces = write_generated(path, 150, seed=3)
    # the same first term again under another trace id: one identity, one split
    dup = [dict(r, trace_id="dup") for r in traces[0]]
    write_records(path, traces + [dup])
    ds = load_dataset([path], VOCAB, val_frac=0.2, eval_frac=0.2, eval_traces=1000)
    train_ids, val_ids = set(ds.train.traces), set(ds.val.traces)
    eval_ids = {t.identity for t in ds.eval_traces}
    assert train_ids and val_ids and eval_ids
    assert not (train_ids & val_ids) and not (train_ids & eval_ids) and not (val_ids & eval_ids)
    # every record of a trace went to its trace's split, and the split depends only on identity
    for tr in traces:
        ident = trace_identity(tr[0]["term"])
        where = split_of(ident, 0.2, 0.2)
        assert ident in {"train": train_ids, "val": val_ids, "eval": eval_ids}[where]
    first = trace_identity(traces[0][0]["term"])
    n_first = len(traces[0])
    counts = {"train": ds.train.traces.count(first), "val": ds.val.traces.count(first)}
    assert sum(counts.values()) in (0, 2 * n_first)  # both copies, or none (eval)
    assert len(ds.train) + len(ds.val) + ds.report["eval_examples"] <= ds.report["valid_records"]


def test_mid_trace_normal_form_markers_never_reach_training(tmp_path):
    path = tmp_path / "t.jsonl"
    traces = write_generated(path, 60, seed=4)
    bad_lines = []
    line = 0
    for tr in traces:
        for r in tr:
            line += 1
            if r["step_k"] == 1 and r["steps_total"] >= 2:
                r["target_span"] = [0, 0]  # the seed's corrupt marker
                bad_lines.append(line)
    assert bad_lines
    write_records(path, traces)
    ds = load_dataset([path], VOCAB, val_frac=0.0, eval_frac=0.0)
    probs = [p for p in ds.validator.problems if p.reason == "normal_form_mid_trace"]
    assert [p.line for p in probs] == bad_lines
    assert ds.report["problems_by_reason"]["normal_form_mid_trace"] == len(bad_lines)
    assert ds.report["invalid_records"] == len(bad_lines)
    assert len(ds.train) == line - len(bad_lines)
    for ids, span in zip(ds.train.ids, ds.train.spans):
        if span == (0, 0):  # a normal-form label only on a term that is in normal form
            assert redex_span(parse(decode(ids))) == (0, 0)
    # the damaged traces are incomplete: none of them can be an evaluation trace
    ds2 = load_dataset([path], VOCAB, val_frac=0.0, eval_frac=1.0)
    damaged = {trace_identity(tr[0]["term"]) for tr in traces if tr[0]["steps_total"] >= 2}
    assert not damaged & {t.identity for t in ds2.eval_traces}


def test_labelled_traces_are_left_out(tmp_path):
    path = tmp_path / "t.jsonl"
    traces = write_generated(path, 80, seed=5)
    labelled = {trace_identity(tr[0]["term"]) for tr in traces[:10]}
    ds = load_dataset([path], VOCAB, val_frac=0.1, eval_frac=0.0, exclude=labelled)
    assert not labelled & (set(ds.train.traces) | set(ds.val.traces))
    assert ds.report["labelled_traces_excluded"] == 10
    assert ds.report["labelled_records_excluded"] == sum(len(tr) for tr in traces[:10])


def test_batches_respect_the_budget_and_keep_padding_small(tmp_path):
    path = tmp_path / "t.jsonl"
    write_generated(path, 400, seed=6)
    ds = load_dataset([path], VOCAB, val_frac=0.0, eval_frac=0.0)
    lengths = [len(b) for b in ds.train.ids]
    batches = make_batches(lengths, 4096, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each once
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 4096 or len(b) == 1
    assert padding_fraction(lengths, batches) <= 0.10
    stream = BatchStream(ds.train, 4096, seed=1)
    x, mask, tgt = next(stream)
    assert x.numel() <= 4096 and mask.sum() <= x.numel() and tgt.shape == (x.shape[0], 2)


def test_batch_stream_resumes_at_its_position(tmp_path):
    path = tmp_path / "t.jsonl"
    write_generated(path, 40, seed=7)
    ds = load_dataset([path], VOCAB, val_frac=0.0, eval_frac=0.0)
    a = BatchStream(ds.train, 512, seed=2)
    seen = [next(a)[0] for _ in range(len(a._batches) + 3)]  # into the second epoch
    b = BatchStream(ds.train, 512, seed=2, epoch=a.epoch, index=a.index - 2)
    assert b.epoch == 1
    assert next(b)[0].equal(seen[-2]) and next(b)[0].equal(seen[-1])


def test_bad_json_and_unknown_lines_are_counted(tmp_path):
    path = tmp_path / "t.jsonl"
    recs = trace_of("(λx.x) y", "a") + trace_of("f ((λx.x) y)", "b")
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n{not json\n"
    path.write_text(text, encoding="utf-8")
    ds = load_dataset([path], VOCAB, val_frac=0.0, eval_frac=0.0)
    assert ds.report["invalid_records"] == 1 and ds.report["problems_by_reason"] == {"bad_json": 1}
    assert len(ds.train) == len(recs)
    assert ds.report["invalid_fraction"] == pytest.approx(1 / (len(recs) + 1))
