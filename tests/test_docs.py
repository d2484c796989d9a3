"""docs/DESIGN.md stays true: its links resolve, nothing points outside the repository, and the
examples it shows (traces, printing, spans, offsets, IoU, identities, labels, store tables, the
functions it names) are recomputed from the code.

The examples are read from the markdown: a line ``<!-- checked: NAME -->`` is followed (after
blank lines) by either a table or a fenced code block, and ``checked(NAME)`` returns them."""

import importlib
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from lambdascope import spans as sp
from lambdascope import terms
from lambdascope.generate import Options, make_trace, trace_records
from lambdascope.traces import TraceValidator, read_traces, trace_identity

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs/DESIGN.md"
TEXT = DESIGN.read_text(encoding="utf-8") if DESIGN.is_file() else ""
NF_TEXT = "normal form"

MARKER = re.compile(r"<!-- checked: ([\w-]+) -->")
SPAN = re.compile(r"\[(\d+), (\d+)\)")


# ---------------------------------------------------------------------------------------------
# Reading the markdown


def _cell(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "`":
        return text[1:-1]
    return text


def _blocks() -> list[tuple[str, object]]:
    """(name, item) for every marker: item is a list of table rows (lists of cells, header and
    separator left out) or the text of a fenced block."""
    lines = TEXT.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = MARKER.fullmatch(line.strip())
        if not m:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        assert j < len(lines), f"marker {m.group(1)!r} at the end of the file"
        if lines[j].startswith("```"):
            end = lines.index("```", j + 1)
            out.append((m.group(1), "\n".join(lines[j + 1:end]) + "\n"))
        elif lines[j].startswith("|"):
            rows = []
            while j < len(lines) and lines[j].startswith("|"):
                rows.append([_cell(c) for c in lines[j].strip().strip("|").split("|")])
                j += 1
            assert len(rows) > 2 and set(rows[1][0]) <= set("-: "), f"table {m.group(1)!r}"
            out.append((m.group(1), rows[2:]))
        else:
            raise AssertionError(f"marker {m.group(1)!r} is followed by neither a table nor a code block")
    return out


def checked(name: str, min_items: int = 1) -> list:
    items = [item for n, item in _blocks() if n == name]
    assert len(items) >= min_items, f"docs/DESIGN.md has {len(items)} '{name}' examples"
    return items


def table(name: str, min_rows: int) -> list[list[str]]:
    (rows,) = checked(name)
    assert len(rows) >= min_rows, f"the '{name}' table has {len(rows)} rows"
    return rows


def span_of(cell: str) -> tuple[int, int]:
    m = SPAN.fullmatch(cell)
    assert m, f"not a span [s, e): {cell!r}"
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------------------------------------
# (a) the document exists and links resolve; (b) nothing points outside the repository


def repo_files() -> list[Path]:
    """Tracked files and untracked ones git does not ignore (what a commit would hold)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = {ROOT / p for p in out.decode("utf-8").split("\0") if p}
    return sorted(p for p in paths if p.is_file())


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    h = heading.strip().lower().replace("`", "")
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(md: str) -> set[str]:
    body = re.sub(r"^```.*?^```", "", md, flags=re.S | re.M)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", body, re.M)}


def test_design_document_exists_and_the_readme_links_it():
    assert DESIGN.is_file()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/DESIGN.md)" in readme


def test_every_relative_link_in_the_markdown_resolves_inside_the_repository():
    mds = {ROOT / "README.md", *ROOT.glob("docs/*.md"),
           *(p for p in repo_files() if p.suffix == ".md")}
    checked_links = 0
    for md in sorted(mds):
        text = md.read_text(encoding="utf-8")
        body = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # not in code blocks
        body = re.sub(r"`[^`]*`", "", body)  # nor in code spans
        for target in re.findall(r"\]\(([^)\s]+)\)", body):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            where = f"{md.relative_to(ROOT)}: {target}"
            assert dest.is_relative_to(ROOT), f"{where} points outside the repository"
            assert dest.exists(), f"{where} does not exist"
            if anchor and dest.suffix == ".md":
                assert anchor in anchors(dest.read_text(encoding="utf-8")), f"{where}: no such heading"
            checked_links += 1
    assert checked_links >= 10


def test_no_file_refers_to_a_path_outside_the_repository():
    outside = ("../" + "shared", "/" + "work/")  # spelled apart so that this file does not match
    design_ref = re.compile(r"(?<!docs/)DESIGN\.md")
    bad = []
    for path in repo_files():
        text = text_of(path)
        if text is None:
            continue
        rel = path.relative_to(ROOT)
        for n, line in enumerate(text.splitlines(), 1):
            if any(o in line for o in outside):
                bad.append(f"{rel}:{n}: {line.strip()[:120]}")
            if path != DESIGN and design_ref.search(line):  # cite it by its path in the repository
                bad.append(f"{rel}:{n}: cites the design document without docs/: {line.strip()[:120]}")
        # a citation of a section, (docs/DESIGN.md, "Spans and offsets"), names a heading of it
        for m in re.finditer(r'docs/DESIGN\.md,\s*"([^"]+)"', text):
            title = " ".join(m.group(1).split())
            if slug(title) not in anchors(TEXT):
                bad.append(f"{rel}: cites a section docs/DESIGN.md does not have: {title!r}")
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------------------------------------
# (c) the example traces


def test_every_json_block_is_checked():
    fences = re.findall(r"^```json$", TEXT, re.M)
    marked = [n for n, item in _blocks() if isinstance(item, str) and n in ("traces", "labels-jsonl", "predictions")]
    assert len(fences) == len(marked)


def test_example_traces_are_valid_complete_and_what_the_generator_writes(tmp_path):
    for i, block in enumerate(checked("traces", min_items=2)):
        f = tmp_path / f"example-{i}.jsonl"
        f.write_text(block, encoding="utf-8")
        v = TraceValidator()
        traces = list(read_traces([f], v))
        assert [str(p) for p in v.problems] == []
        lines = block.splitlines()
        assert len(traces) == 1 and traces[0].complete and v.valid_records == len(lines) >= 2
        # trace_id is "{seed}-{index}", and the records are the generator's, byte for byte
        seed, index = map(int, traces[0].trace_id.split("-"))
        opts = Options(seed=seed)
        assert trace_records(opts, make_trace(opts, index, {})) == lines


def test_family_terms_are_the_families_own():
    from lambdascope import families

    tables = {"church": families.CHURCH, "bool": families.BOOL, "pairs": families.PAIRS,
              "combinators": families.COMBINATORS}
    rows = table("family-terms", 20)
    assert {(f, n) for f, n, _ in rows} == {(f, n) for f, terms_ in tables.items() for n in terms_}
    for family, name, text in rows:
        assert terms.print_term(tables[family][name]) == text, (family, name)
    # the Rust generator parses the same texts
    rust = (ROOT / "lambda_gen_rs" / "src" / "families.rs").read_text(encoding="utf-8")
    for _, _, text in rows:
        assert f'"{text}"' in rust, text


def test_family_examples_are_what_the_generator_writes():
    rows = table("family-examples", 4)
    families_shown = set()
    for tid, first, steps, normal_form in rows:
        family, seed, index = tid.rsplit("-", 2)
        opts = Options(seed=int(seed), family=family)
        tr = make_trace(opts, int(index), {})
        rec = trace_records(opts, tr)[0]
        assert rec.startswith(f'{{"trace_id":"{tid}",'), rec
        assert (tr.terms[0], len(tr.terms) - 1, tr.terms[-1]) == (first, int(steps), normal_form), tid
        families_shown.add(family)
    assert families_shown == {"church", "bool", "pairs", "combinators"}


# ---------------------------------------------------------------------------------------------
# (d) printing, spans, offsets, IoU, identities


def test_printing_examples():
    for typed, canonical in table("printing", 10):
        assert terms.print_term(terms.parse(typed)) == canonical, typed
        assert terms.is_canonical(canonical), canonical
        assert terms.is_canonical(typed) == (typed == canonical), typed


def test_redex_span_examples():
    rows = table("spans", 10)
    for term, span_cell, text, nxt in rows:
        span = span_of(span_cell)
        t = terms.parse(term)
        assert terms.print_with_span(t) == (term, span), term
        assert terms.redex_span(t) == span
        if text == NF_TEXT:
            assert span == sp.NORMAL_FORM and terms.step(t) is None and nxt == "–", term
            continue
        s, e = span
        assert term[s:e] == text, term
        redex = terms.parse(text)
        assert terms.is_redex(redex) and terms.print_term(redex) == text, term
        assert terms.redex_spans(t)[0] == span
        assert terms.print_term(terms.step(t)) == nxt, term
        assert terms.print_term(terms.contract_span(t, span)) == nxt, term
    assert any(r[2] == NF_TEXT for r in rows) and any(r[2] != NF_TEXT for r in rows)


def test_byte_offset_examples():
    for term, chars, wrong in table("byte-offsets", 2):
        s, e = span_of(chars)
        assert terms.redex_span(terms.parse(term)) == (s, e)
        as_bytes = (len(term[:s].encode("utf-8")), len(term[:e].encode("utf-8")))
        assert as_bytes == span_of(wrong) != (s, e), term


def test_offset_examples():
    from trainer.data import Vocab

    vocab = Vocab()
    for term, char_cell, text, token_cell in table("offsets", 3):
        char, token = span_of(char_cell), span_of(token_cell)
        assert terms.redex_span(terms.parse(term)) == char, term
        assert sp.char_to_token_span(*char) == token, term
        assert sp.token_to_char_span(*token) == char, term
        ids = vocab.encode(term)
        assert len(ids) == len(term) + 2 and ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
        if text == NF_TEXT:
            assert char == token == sp.NORMAL_FORM
        else:
            assert term[char[0]:char[1]] == text
            assert "".join(vocab.itos[i] for i in ids[token[0]:token[1]]) == text, term


def test_iou_examples():
    rows = table("iou", 6)
    for pred, gold, value in rows:
        got = sp.span_iou(*span_of(pred), *span_of(gold))
        assert got == pytest.approx(float(Fraction(value))), (pred, gold)


def test_identity_and_split_examples():
    from trainer.config import TrainConfig
    from trainer.data import split_of

    cfg = TrainConfig()
    assert (cfg.val_frac, cfg.eval_frac) == (0.02, 0.02)  # the defaults the table uses
    rows = table("identities", 3)
    for first_term, identity, split in rows:
        assert terms.is_canonical(first_term)
        assert trace_identity(first_term) == identity, first_term
        assert split_of(identity, 0.02, 0.02) == split, first_term
    assert {r[2] for r in rows} == {"train", "val", "eval"}
    # the example traces' identities are the ones in the table
    firsts = {b.splitlines()[0] for b in checked("traces")}
    for line in firsts:
        term = re.search(r'"term":"([^"]*)"', line).group(1)
        assert [trace_identity(term), "train"] in [r[1:] for r in rows]


# ---------------------------------------------------------------------------------------------
# labels, the store, and the functions the document names


def test_label_categories():
    from app.labels import CATEGORY_TITLES
    from lambdascope.store import LABEL_CATEGORIES

    rows = table("label-categories", 4)
    assert [r[0] for r in rows] == list(LABEL_CATEGORIES)
    assert [r[1] for r in rows] == [CATEGORY_TITLES[c] for c in LABEL_CATEGORIES]


def test_label_files_round_trip_through_a_store(tmp_path):
    import json

    from app.labels import FIELDS, export_labels, import_labels
    from lambdascope.store import open_store

    (jsonl,) = checked("labels-jsonl")
    (csv_text,) = checked("labels-csv")
    lines = jsonl.splitlines(keepends=True)
    for line in lines:
        obj = json.loads(line)
        assert tuple(obj) == FIELDS
        assert trace_identity(obj["term"]) == obj["trace_identity"]
    engine, Session = open_store(f"sqlite:///{tmp_path / 'labels.db'}")
    try:
        with Session() as s, s.begin():
            assert import_labels(s, lines, "jsonl") == (len(lines), 0)
        with Session() as s:
            assert "".join(export_labels(s, "jsonl")) == jsonl
            assert "".join(export_labels(s, "csv")) == csv_text.replace("\n", "\r\n")
        with Session() as s, s.begin():  # importing again adds nothing
            assert import_labels(s, lines, "jsonl") == (0, len(lines))
    finally:
        engine.dispose()


def test_the_predictions_example_imports_as_its_table_says_and_exports_to_the_same_bytes(tmp_path):
    """The predictions file in the import section: valid as a trace file, a prefix of the
    generator's trace, stored as the table below it says, and exported back byte for byte."""
    import json

    from sqlalchemy import select

    from lambdascope.exchange import PRED_FIELDS, export_records, import_predictions
    from lambdascope.store import Example, Prediction, open_store

    (block,) = checked("predictions")
    f = tmp_path / "predictions.jsonl"
    f.write_text(block, encoding="utf-8")
    v = TraceValidator()
    assert [t.complete for t in read_traces([f], v)] == [True] and v.problems == []
    for line, rec in zip(block.splitlines(), map(json.loads, block.splitlines())):
        assert [k for k in rec if k in PRED_FIELDS] == [k for k in PRED_FIELDS if k in rec]
    seed, index = map(int, json.loads(block.splitlines()[0])["trace_id"].split("-"))
    opts = Options(seed=seed)
    plain = [json.dumps({k: v for k, v in json.loads(x).items() if k not in PRED_FIELDS}, ensure_ascii=False,
                        separators=(",", ":")) for x in block.splitlines()]
    assert trace_records(opts, make_trace(opts, index, {})) == plain
    engine, Session = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        res = import_predictions(Session, f, run="docs", step=1, offsets="bos-tokens")
        with Session() as s:
            stored = {e.term: p for p, e in s.execute(select(Prediction, Example)
                                                       .join(Example, Example.id == Prediction.example_id))}
            rows = table("predictions-stored", 3)
            assert len(rows) == len(stored)
            for term, tokens, chars, text, iou, kind in rows:  # cells without their backticks
                p = stored[term]
                start, end = span_of(chars)
                assert (p.pred_start, p.pred_end) == (start, end) == sp.token_to_char_span(*span_of(tokens))
                assert text == (NF_TEXT if (start, end) == (0, 0) else term[start:end])
                assert Fraction(iou) == Fraction(p.iou).limit_denominator(1000) and p.error_kind == kind
            assert "".join(x + "\n" for x in export_records(s, res.checkpoint_id, "bos-tokens")) == block
    finally:
        engine.dispose()


def test_store_tables():
    from lambdascope.store import Base

    rows = table("store-tables", 5)
    assert {r[0] for r in rows} == set(Base.metadata.tables)
    for name, _, columns in rows:
        cols = set(Base.metadata.tables[name].columns.keys())
        named = set(re.findall(r"`([a-z_]+)`", columns))
        assert named and named <= cols, (name, named - cols)


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name) and e.name.split(".")[0] == parts[0]:
                continue  # not a module: an attribute of a shorter prefix
            raise
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise AssertionError(dotted)


def test_every_python_name_in_the_document_exists():
    names = set(re.findall(r"`((?:lambdascope|trainer|app)(?:\.\w+)+)`", TEXT))
    assert len(names) >= 40
    missing = []
    for dotted in sorted(names):
        try:
            _resolve(dotted)
        except (AttributeError, ModuleNotFoundError) as e:
            missing.append(f"{dotted}: {e}")
    assert not missing, "\n".join(missing)


def test_every_rust_name_in_the_document_exists():
    """Rust items are named by their path in the crate (``term::Arena::parse``): the module's
    source (``src/term.rs`` or ``src/term/*.rs``) defines the last name."""
    src = ROOT / "lambda_gen_rs" / "src"
    refs = set(re.findall(r"`(\w+)::((?:\w+::)*\w+)`", TEXT))
    assert len(refs) >= 10
    missing = []
    for module, path in sorted(refs):
        files = [src / f"{module}.rs", *sorted((src / module).glob("**/*.rs"))]
        code = "".join(f.read_text(encoding="utf-8") for f in files if f.is_file())
        item = path.split("::")[-1]
        if not re.search(rf"\b(fn|struct|enum|trait) {item}\b", code):
            missing.append(f"{module}::{path}")
    assert not missing, missing
