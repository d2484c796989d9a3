"""The `lambdascope` command line: help, bad flags, generate through lambda-gen."""

import subprocess
import sys

import pytest


def lambdascope(*args, **kw):
    return subprocess.run([sys.executable, "-m", "lambdascope.cli", *args],
                          capture_output=True, text=True, **kw)


def test_help_lists_the_commands():
    r = lambdascope("--help")
    assert r.returncode == 0
    for cmd in ("generate", "check"):
        assert cmd in r.stdout


@pytest.mark.parametrize("args, fragment", [
    (["generate", "out.jsonl", "0"], "positive integer"),
    (["generate", "out.jsonl", "ten"], "positive integer"),
    (["generate", "out.jsonl", "5", "--threads", "0"], "positive integer"),
    (["generate", "out.jsonl", "5", "--bogus"], "unrecognized arguments"),
    (["check"], "required"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_are_one_line_errors_with_exit_2(tmp_path, args, fragment):
    r = lambdascope(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert fragment in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()


def test_generate_uses_lambda_gen_and_matches_reference(tmp_path):
    rust, ref = tmp_path / "rust.jsonl", tmp_path / "ref.jsonl"
    r = lambdascope("generate", str(rust), "300", "--seed", "3", "--threads", "2")
    assert r.returncode == 0, r.stderr
    r = lambdascope("generate", "--reference", str(ref), "300", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert rust.read_bytes() == ref.read_bytes()
    assert "records/s" in r.stderr


@pytest.mark.parametrize("shard", ["3/2", "0/2", "x"])
def test_generate_bad_shard(tmp_path, shard):
    out = tmp_path / "s.jsonl"
    for extra in ([], ["--reference"]):
        r = lambdascope("generate", *extra, str(out), "10", "--shard", shard)
        assert r.returncode == 2, (extra, r.stderr)
        assert "shard" in r.stderr
        assert not out.exists()


def test_generate_passes_family_and_min_len_to_lambda_gen_and_the_reference(tmp_path):
    rust, ref = tmp_path / "rust.jsonl", tmp_path / "ref.jsonl"
    args = ["200", "--seed", "4", "--family", "bool", "--min-len", "50"]
    r = lambdascope("generate", str(rust), *args, "--threads", "2")
    assert r.returncode == 0, r.stderr
    assert "family bool" in r.stderr and "too_short" in r.stderr
    r = lambdascope("generate", "--reference", str(ref), *args)
    assert r.returncode == 0, r.stderr
    assert rust.read_bytes() == ref.read_bytes()
    assert rust.read_text(encoding="utf-8").startswith('{"trace_id":"bool-4-0",')
    assert "family bool" in r.stderr and "too_short" in r.stderr


def test_generate_passes_min_start_to_lambda_gen_and_the_reference(tmp_path):
    rust, ref = tmp_path / "rust.jsonl", tmp_path / "ref.jsonl"
    args = ["120", "--seed", "9", "--min-start", "30"]
    r = lambdascope("generate", str(rust), *args, "--threads", "2")
    assert r.returncode == 0, r.stderr
    assert "near_start" in r.stderr
    r = lambdascope("generate", "--reference", str(ref), *args)
    assert r.returncode == 0, r.stderr
    assert "near_start" in r.stderr
    assert rust.read_bytes() == ref.read_bytes()
    for extra in ([], ["--reference"]):  # a start no term can reach, or not a number: exit 2, no file
        for bad in (["--min-start", "192"], ["--min-start", "-3"]):
            out = tmp_path / "bad.jsonl"
            r = lambdascope("generate", *extra, str(out), "10", *bad)
            assert r.returncode == 2, (extra, bad, r.stderr)
            assert "--min-start" in r.stderr
            assert not out.exists()


def test_generate_unknown_family_is_a_usage_error(tmp_path):
    out = tmp_path / "f.jsonl"
    for extra in ([], ["--reference"]):
        r = lambdascope("generate", *extra, str(out), "10", "--family", "lambda")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "church" in r.stderr and "combinators" in r.stderr
        assert not out.exists()
