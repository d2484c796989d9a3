"""The Python reference generator: RNG, determinism, shards, caps, and the distribution bar."""

import json
import subprocess
import sys

import pytest

from lambdascope.generate import (Options, Summary, generate, make_trace, parse_shard, shard_range,
                                  trace_records, write_traces)
from lambdascope.rng import SplitMix64
from lambdascope.terms import parse, print_with_span
from lambdascope.traces import TraceValidator, read_traces


def test_splitmix64_matches_the_published_reference_vector():
    # Vigna's splitmix64.c, state 1234567
    r = SplitMix64(1234567)
    assert [r.next_u64() for _ in range(5)] == [
        6457827717110365317, 3203168211198807973, 9817491932198370423,
        4593380528125082431, 16408922859458223821]


def test_trace_streams_depend_on_seed_and_index_only():
    a = SplitMix64.for_trace(5, 17).next_u64()
    assert a == SplitMix64.for_trace(5, 17).next_u64()
    assert a != SplitMix64.for_trace(5, 18).next_u64()
    assert a != SplitMix64.for_trace(6, 17).next_u64()


def _lines(opts, n, shard=None):
    return [line for tr in generate(opts, n, shard) for line in trace_records(opts, tr)]


def test_shards_concatenate_to_the_whole():
    opts = Options(seed=11)
    whole = _lines(opts, 50)
    for n in (1, 3, 7):
        parts = [line for i in range(1, n + 1) for line in _lines(opts, 50, (i, n))]
        assert parts == whole


def test_shard_ranges_are_disjoint_and_cover():
    for total in (0, 1, 10, 101):
        for n in (1, 2, 3, 7):
            covered = [i for k in range(1, n + 1) for i in shard_range(total, (k, n))]
            assert covered == list(range(total))


@pytest.mark.parametrize("bad", ["3/2", "0/2", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard(bad):
    with pytest.raises(ValueError):
        parse_shard(bad)


def test_records_follow_the_contract():
    opts = Options(seed=3)
    tr = make_trace(opts, 0, {})
    recs = [json.loads(line) for line in trace_records(opts, tr)]
    assert [r["step_k"] for r in recs] == list(range(len(recs)))
    assert all(r["steps_total"] == len(recs) - 1 for r in recs)
    assert all(r["trace_id"] == "3-0" for r in recs)
    assert recs[-1]["target_span"] == [0, 0]
    assert all(r["target_span"] != [0, 0] for r in recs[:-1])
    for r in recs:
        assert list(print_with_span(parse(r["term"]))[1]) == r["target_span"]
    # λ is written as UTF-8, not escaped, and there are no spaces between tokens of JSON
    assert '"term":"' in trace_records(opts, tr)[0] and "\\u" not in "".join(trace_records(opts, tr))


def test_caps_drop_whole_traces_and_count_them():
    opts = Options(seed=1, max_steps=6, max_len=60, min_steps=2)
    drops = {}
    for i in range(200):
        tr = make_trace(opts, i, drops)
        assert 2 <= len(tr.terms) - 1 <= 6
        assert max(len(t) for t in tr.terms) <= 60
    assert drops.get("too_long", 0) > 0 and drops.get("too_many_steps", 0) > 0
    assert drops.get("too_few_steps", 0) > 0


def test_generated_file_passes_the_validator(tmp_path):
    out = tmp_path / "t.jsonl"
    assert write_traces(str(out), 300, seed=9, quiet=True) == 0
    v = TraceValidator()
    traces = list(read_traces([out], v))
    assert v.problems == []
    assert len(traces) == 300 and all(t.complete for t in traces)


def test_unwritable_output_is_a_clear_error_and_leaves_nothing(tmp_path, capsys):
    assert write_traces(str(tmp_path / "missing" / "t.jsonl"), 5, quiet=True) == 2
    assert "cannot write" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


def test_default_distribution_is_rich():
    """The issue's bar over 10,000 traces with default options."""
    s = Summary()
    for tr in generate(Options(seed=0), 10_000, None, s):
        s.add(tr)
    d = s.as_dict()
    assert d["median_steps"] >= 4
    assert d["frac_ge8_steps"] >= 0.25
    assert d["frac_distinct_initial"] >= 0.95
    assert d["frac_redex_not_at_0"] >= 0.40
    assert d["traces_nested_binders"] > 0 and d["traces_shadowed_binders"] > 0
    assert d["frac_alpha_renamed"] >= 0.01


def test_reference_cli_is_deterministic(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        subprocess.run([sys.executable, "-m", "lambdascope.cli", "generate", "--reference",
                        str(out), "40", "--seed", "4"], check=True, capture_output=True)
    assert a.read_bytes() == b.read_bytes() and a.stat().st_size > 0
