"""Write the bad-input corpus under tests/data/bad/ (run from the repo root; the files are
committed, this script documents how each was made). Every file holds the same three good
traces with one defect placed in the second; ``EXPECTED`` says what the validator must report.
The 10 MB line is made by the test itself rather than committed."""

import json
from pathlib import Path

from lambdascope.generate import Options, make_trace, trace_records

HERE = Path(__file__).parent / "bad"

# file -> (reason, line) the validator must report; every other record must survive
EXPECTED = {
    "malformed_json": ("bad_json", 5),
    "truncated_last_line": ("truncated_line", 15),
    "missing_field": ("missing_field", 5),
    "wrong_type": ("wrong_type", 5),
    "span_out_of_bounds": ("span_out_of_bounds", 5),
    "span_reversed": ("span_reversed", 5),
    "utf8_byte_offsets": ("span_out_of_bounds", 4),
    "nf_mid_trace": ("normal_form_mid_trace", 5),
    "non_canonical": ("non_canonical_term", 5),
    "missing_steps": ("missing_steps", 5),
    "invalid_utf8": ("invalid_utf8", 5),
}


def good_lines() -> list[str]:
    opts = Options(seed=2024)
    lines: list[str] = []
    for i in (0, 1, 2):
        lines += trace_records(opts, make_trace(opts, i, {}))
    return lines


def second_trace_lines(lines):
    return [i for i, line in enumerate(lines) if json.loads(line)["trace_id"] == "2024-1"]


def with_record(lines, idx, **changes):
    out = list(lines)
    rec = json.loads(out[idx])
    for k, v in changes.items():
        if v is None:
            del rec[k]
        else:
            rec[k] = v
    out[idx] = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    return out


def byte_span(term, span):
    s, e = span
    return [len(term[:s].encode()), len(term[:e].encode())]


def build() -> dict[str, bytes]:
    lines = good_lines()
    idx = second_trace_lines(lines)
    first, mid, last = idx[0], idx[1], idx[-1]
    rec_mid = json.loads(lines[mid])
    files: dict[str, list[str] | bytes] = {}
    files["malformed_json"] = lines[:mid] + ['{"trace_id": "2024-1", "step_k": '] + lines[mid + 1:]
    cut = lines[-1][: len(lines[-1]) // 2]
    files["truncated_last_line"] = ("\n".join(lines[:-1] + [cut])).encode()
    files["missing_field"] = with_record(lines, mid, target_span=None)
    files["wrong_type"] = with_record(lines, mid, step_k=str(rec_mid["step_k"]))
    files["span_out_of_bounds"] = with_record(lines, mid, target_span=[1, len(rec_mid["term"]) + 5])
    files["span_reversed"] = with_record(lines, mid, target_span=[5, 2])
    # find a record of the file whose UTF-8 byte span differs from its code-point span
    k = next(i for i in idx if json.loads(lines[i])["target_span"] != [0, 0]
             and byte_span(json.loads(lines[i])["term"], json.loads(lines[i])["target_span"])
             != json.loads(lines[i])["target_span"])
    r = json.loads(lines[k])
    files["utf8_byte_offsets"] = with_record(lines, k, target_span=byte_span(r["term"], r["target_span"]))
    files["nf_mid_trace"] = with_record(lines, mid, target_span=[0, 0])
    # an equivalent but non-canonical printing: redundant parentheses around the whole term
    files["non_canonical"] = with_record(lines, mid, term="(" + rec_mid["term"] + ")")
    files["missing_steps"] = lines[:mid] + lines[mid + 1:]
    files["empty"] = b""
    files["invalid_utf8"] = b"\n".join(
        [l.encode() for l in lines[:mid]] + [lines[mid].encode().replace("λ".encode(), b"\xff", 1)]
        + [l.encode() for l in lines[mid + 1:]]) + b"\n"
    out = {}
    for name, content in files.items():
        out[name] = content if isinstance(content, bytes) else ("\n".join(content) + "\n").encode()
    return out


if __name__ == "__main__":
    HERE.mkdir(parents=True, exist_ok=True)
    for name, data in build().items():
        (HERE / f"{name}.jsonl").write_bytes(data)
    print(f"wrote {len(build())} files to {HERE}")
