"""`lambdascope check` and the validator over the bad-input corpus (tests/data/bad/)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lambdascope.traces import TraceValidator, read_traces
from tests.data.make_bad_corpus import EXPECTED, build, good_lines

BAD = Path(__file__).parent / "data" / "bad"
GOOD_RECORDS = len(good_lines())


def lambdascope(*args):
    return subprocess.run([sys.executable, "-m", "lambdascope.cli", *args],
                          capture_output=True, text=True)


def test_committed_corpus_matches_its_recipe():
    for name, data in build().items():
        assert (BAD / f"{name}.jsonl").read_bytes() == data, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_defect_is_reported_with_its_line_and_nothing_valid_is_lost(name):
    reason, line = EXPECTED[name]
    v = TraceValidator()
    traces = list(read_traces([BAD / f"{name}.jsonl"], v))
    assert [(p.reason, p.line) for p in v.problems] == [(reason, line)]
    expected_valid = GOOD_RECORDS - 1  # the one defective (or removed) record
    assert v.valid_records == expected_valid
    assert sum(len(t.records) for t in traces) == expected_valid
    # only the trace holding the defect is incomplete
    broken = 2 if name == "truncated_last_line" else 1
    assert [t.complete for t in traces] == [i != broken for i in range(3)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_cli_exits_1_and_names_file_line_and_reason(name):
    reason, line = EXPECTED[name]
    r = lambdascope("check", str(BAD / f"{name}.jsonl"))
    assert r.returncode == 1
    assert f"{name}.jsonl:{line}: {reason}:" in r.stderr
    assert "FAILED" in r.stderr


def test_byte_offsets_get_a_hint():
    r = lambdascope("check", str(BAD / "utf8_byte_offsets.jsonl"))
    assert "UTF-8 byte offsets" in r.stderr


def test_empty_file_is_an_error():
    r = lambdascope("check", str(BAD / "empty.jsonl"))
    assert r.returncode == 1 and "empty" in r.stderr


def test_ten_megabyte_line_is_rejected_without_stopping_the_scan(tmp_path):
    lines = good_lines()
    huge = json.dumps({"trace_id": "huge", "step_k": 0, "steps_total": 0,
                       "term": "x" * (10 * 1024 * 1024), "target_span": [0, 0]})
    p = tmp_path / "huge.jsonl"
    p.write_text("\n".join(lines[:5] + [huge] + lines[5:]) + "\n", encoding="utf-8")
    v = TraceValidator()
    list(read_traces([p], v))
    assert [(x.reason, x.line) for x in v.problems] == [("line_too_long", 6)]
    assert v.valid_records == GOOD_RECORDS


def test_clean_file_passes(tmp_path):
    p = tmp_path / "good.jsonl"
    p.write_text("\n".join(good_lines()) + "\n", encoding="utf-8")
    r = lambdascope("check", str(p))
    assert r.returncode == 0, r.stderr
    assert f"{GOOD_RECORDS} valid records, 3 traces (3 complete), 0 problems" in r.stderr


def test_many_problems_are_capped_then_counted(tmp_path):
    bad = "\n".join("{broken" for _ in range(50)) + "\n"
    p = tmp_path / "bad.jsonl"
    p.write_text(bad)
    r = lambdascope("check", str(p))
    assert r.returncode == 1
    assert r.stderr.count(": bad_json:") == 20
    assert "30 more problems not shown" in r.stderr
    assert "bad_json" in r.stderr.split("problems by reason:")[1]


def test_wrong_contraction_is_found(tmp_path):
    lines = good_lines()
    rec = json.loads(lines[1])
    # replace step 1 by another valid term with the right span: contraction no longer matches
    rec["term"], rec["target_span"] = "(λq.q) a", [0, 8]
    lines[1] = json.dumps(rec, ensure_ascii=False)
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    v = TraceValidator()
    list(read_traces([p], v))
    assert ("wrong_contraction", 2) in [(x.reason, x.line) for x in v.problems]


def test_missing_file_and_bad_glob_are_usage_errors(tmp_path):
    r = lambdascope("check", str(tmp_path / "nope.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = lambdascope("check", str(tmp_path / "*.jsonl"))
    assert r.returncode == 2 and "no file matches" in r.stderr
