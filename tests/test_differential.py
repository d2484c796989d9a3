"""The Rust generator and the Python reference agree byte for byte (the differential oracle)."""

import json
import subprocess

import pytest

from lambdascope.commands.common import find_generator
from lambdascope.families import FAMILY_NAMES
from lambdascope.generate import Options, generate, trace_records

EXE = find_generator()


def rust(*args: str) -> bytes:
    assert EXE is not None, "lambda-gen is not built: run `make build`"
    r = subprocess.run([str(EXE), "generate", "-", *args, "--quiet"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def python(n: int, seed: int, shard=None, **caps) -> bytes:
    opts = Options(seed=seed, **caps)
    lines = [line for tr in generate(opts, n, shard) for line in trace_records(opts, tr)]
    return ("\n".join(lines) + "\n").encode("utf-8")


@pytest.mark.parametrize("seed", [0, 1, 42, 2**64 - 1])
def test_same_bytes_default_options(seed):
    assert rust("2000", "2", "--seed", str(seed)) == python(2000, seed)


def test_same_bytes_with_caps():
    args = ["1000", "2", "--seed", "7", "--max-steps", "12", "--max-len", "80", "--min-steps", "3"]
    assert rust(*args) == python(1000, 7, max_steps=12, max_len=80, min_steps=3)


def test_same_bytes_for_a_shard():
    assert rust("900", "2", "--seed", "5", "--shard", "2/3") == python(900, 5, shard=(2, 3))


@pytest.mark.parametrize("n", [1, 3, 7])
def test_shards_concatenated_equal_the_single_run(tmp_path, n):
    whole = rust("700", "2", "--seed", "9")
    parts = b"".join(rust("700", "2", "--seed", "9", "--shard", f"{i}/{n}") for i in range(1, n + 1))
    assert parts == whole


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("seed", [0, 3, 2**64 - 1])
def test_same_bytes_for_every_family(family, seed):
    assert rust("600", "2", "--seed", str(seed), "--family", family) == python(600, seed, family=family)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_same_bytes_for_every_family_with_caps_and_min_len(family):
    caps = ["--max-steps", "20", "--max-len", "120", "--min-steps", "2", "--min-len", "60"]
    assert rust("400", "2", "--seed", "13", "--family", family, *caps) == python(
        400, 13, family=family, max_steps=20, max_len=120, min_steps=2, min_len=60)


@pytest.mark.parametrize("family", ["random", "church"])
def test_same_bytes_with_min_len_alone(family):
    assert rust("500", "2", "--seed", "21", "--family", family, "--min-len", "100") == python(
        500, 21, family=family, min_len=100)


@pytest.mark.parametrize("family, caps", [("random", {"min_start": 30}), ("pairs", {"min_start": 12}),
                                           ("random", {"min_start": 40, "min_len": 128})])
def test_same_bytes_and_drops_with_min_start(family, caps, tmp_path):
    """--min-start keeps the same traces on both sides, and drops the same attempts for it."""
    from lambdascope.generate import Summary

    flags = [x for k, v in caps.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    js = tmp_path / "summary.json"
    assert rust("300", "2", "--seed", "17", "--family", family, *flags, "--summary-json", str(js)) == python(
        300, 17, family=family, **caps)
    summary = Summary(family=family)
    list(generate(Options(seed=17, family=family, **caps), 300, None, summary))
    assert summary.dropped.get("near_start", 0) > 0
    rust_dropped = json.loads(js.read_text())["dropped"]
    assert {k: v for k, v in rust_dropped.items() if v} == summary.dropped


def test_same_bytes_for_a_shard_of_a_family():
    assert rust("900", "2", "--seed", "5", "--family", "pairs", "--shard", "2/3") == python(
        900, 5, shard=(2, 3), family="pairs")
