"""Training data: validated traces, the character vocabulary, the split, and bucketed batches.

- Records come from ``lambdascope.traces.read_traces``: invalid records are counted and never
  used; only complete traces go to the evaluation set.
- Tokens are characters with BOS and EOS (docs/DESIGN.md); spans become token spans through
  ``lambdascope.spans.char_to_token_span`` only.
- The split is by trace identity (a hash of the first term), never by record, so a trace is
  in exactly one of train / val / eval, in every data set and every run.
- Batches hold examples of nearly equal length (sorted with random tie-breaking), as many as
  fit under a token budget, so padding stays small.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lambdascope.metrics import shape_histogram
from lambdascope.spans import char_to_token_span
from lambdascope.traces import TraceResult, TraceValidator, read_traces, unique_traces

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
ALPHABET = "λ.() " + string.ascii_lowercase + string.digits  # every character of canonical printing


class Vocab:
    """Characters plus PAD (0), BOS, EOS and UNK. Saved in every checkpoint as ``itos``."""

    def __init__(self, itos: list[str] | None = None):
        self.itos = list(itos) if itos is not None else list(SPECIALS) + list(ALPHABET)
        assert self.itos[:4] == list(SPECIALS) and len(self.itos) < 256  # ids fit in a byte
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(4)
        self.open_id, self.close_id, self.space_id = self.stoi["("], self.stoi[")"], self.stoi[" "]
        table = {ord(c): chr(i) for i, c in enumerate(self.itos) if len(c) == 1}
        self._table = _Translation(table, chr(self.unk_id))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, term: str) -> bytes:
        """Token ids of ``term`` as bytes: BOS, one id per character, EOS."""
        return bytes((self.bos_id,)) + term.translate(self._table).encode("latin-1") + bytes((self.eos_id,))


class _Translation(dict):
    """A ``str.translate`` table that maps unknown characters to UNK."""

    def __init__(self, table: dict[int, str], unk: str):
        super().__init__(table)
        self.unk = unk

    def __missing__(self, key: int) -> str:
        return self.unk


# ---------------------------------------------------------------------------------------------
# Split


SPLITS = ("train", "val", "eval")


def split_of(identity: str, val_frac: float, eval_frac: float) -> str:
    """The split of a trace, from a stable hash of its identity."""
    return SPLITS[_split_index(_unit(identity), val_frac, eval_frac)]


def _unit(identity: str) -> float:
    """A stable number in [0, 1) for a trace identity."""
    h = hashlib.sha256(b"lambdascope-split:" + identity.encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64


def _split_index(u: float, val_frac: float, eval_frac: float) -> int:
    if u < eval_frac:
        return 2
    if u < eval_frac + val_frac:
        return 1
    return 0


# ---------------------------------------------------------------------------------------------
# Examples and batches


@dataclass
class Examples:
    """Tokenised examples: ids as bytes, the gold token span, and the trace each came from."""

    ids: list[bytes] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)  # trace identity of each example

    def add(self, vocab: Vocab, term: str, char_span: tuple[int, int], identity: str = "") -> None:
        self.ids.append(vocab.encode(term))
        self.spans.append(char_to_token_span(*char_span))
        self.traces.append(identity)

    def __len__(self) -> int:
        return len(self.ids)

    def tokens(self) -> int:
        return sum(len(b) for b in self.ids)


def collate(ids: list[bytes], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest: ids (B, T) int64 and the mask of real tokens (B, T) bool."""
    T = max(len(b) for b in ids)
    pad = bytes((pad_id,))
    buf = bytearray(b"".join(b + pad * (T - len(b)) for b in ids))
    x = torch.frombuffer(buf, dtype=torch.uint8).view(len(ids), T).long()
    lengths = torch.tensor([len(b) for b in ids])
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return x, mask


def make_batches(lengths: list[int], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped into batches of nearly equal length, each with batch size x longest
    length <= ``batch_tokens`` (a longer example gets a batch of its own), in random order.
    Equal lengths are shuffled, so every epoch pairs different examples."""
    keys = [rng.random() for _ in lengths]
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], keys[i]))
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        if cur and (len(cur) + 1) * max(longest, n) > batch_tokens:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def padding_fraction(lengths: list[int], batches: list[list[int]]) -> float:
    """Padding tokens / all tokens (real and padding) over the batches."""
    real = sum(lengths[i] for b in batches for i in b)
    total = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - real / total if total else 0.0


class BatchStream:
    """Endless training batches: epoch after epoch, each with its own shuffle. The position
    (epoch, batch) is saved in checkpoints so that ``--resume`` continues the same order."""

    def __init__(self, examples: Examples, batch_tokens: int, seed: int, epoch: int = 0, index: int = 0,
                 rank: int = 0, world: int = 1):
        self.examples = examples
        self.lengths = [len(b) for b in examples.ids]
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.rank, self.world = rank, world  # with several processes, each takes every world-th batch
        self.epoch, self.index = epoch, index
        self._batches = self._epoch_batches(epoch)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        # every process shuffles the same way and keeps its own slice, in whole rounds
        batches = make_batches(self.lengths, self.batch_tokens, random.Random(self.seed * 1_000_003 + epoch))
        if self.world == 1:
            return batches
        rounds = len(batches) // self.world
        if rounds == 0:
            raise ValueError(f"{len(batches)} batches cannot feed {self.world} processes: "
                             "lower --batch-tokens or add data")
        return batches[self.rank: rounds * self.world: self.world]

    def padding_fraction(self) -> float:
        return padding_fraction(self.lengths, self._batches)

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.index >= len(self._batches):
            self.epoch, self.index = self.epoch + 1, 0
            self._batches = self._epoch_batches(self.epoch)
        batch = self._batches[self.index]
        self.index += 1
        ex = self.examples
        x, mask = collate([ex.ids[i] for i in batch])
        targets = torch.tensor([ex.spans[i] for i in batch], dtype=torch.long)
        return x, mask, targets


# ---------------------------------------------------------------------------------------------
# Loading


@dataclass
class Dataset:
    """What a run trains and evaluates on, and the report of reading it."""

    vocab: Vocab
    train: Examples
    val: Examples
    eval_traces: list[TraceResult]
    validator: TraceValidator
    report: dict


def load_dataset(paths: list[Path], vocab: Vocab, *, val_frac: float = 0.02, eval_frac: float = 0.02,
                 eval_traces: int = 500, val_examples: int = 4000,
                 exclude: set[str] = frozenset(), progress=None) -> Dataset:
    """Stream and validate ``paths``; split by trace identity; leave out the identities in
    ``exclude`` (labelled traces) from training and validation. The evaluation set is the
    ``eval_traces`` complete eval-split traces with the smallest hash, so it depends on the
    traces' content, not on file order (labelled traces stay in it, so that checkpoints of runs
    before and after labelling are compared on the same set)."""
    v = TraceValidator()
    train, val = Examples(), Examples()
    eval_candidates: list[tuple[float, TraceResult]] = []
    eval_seen: set[str] = set()
    counts: Counter[str] = Counter()
    train_steps: Counter[int] = Counter()  # training traces by steps_total
    train_lengths: Counter[int] = Counter()  # training examples by their term's code points
    for tr in read_traces(paths, v, progress=progress):
        if not tr.records:
            continue
        ident = tr.identity
        u = _unit(ident)
        split = SPLITS[_split_index(u, val_frac, eval_frac)]
        counts[f"{split}_split_traces"] += 1
        if split == "eval":
            if not tr.complete:  # rollouts need every step
                counts["eval_incomplete_traces_unused"] += 1
            elif ident in eval_seen:  # the same first term twice: one trace is enough
                counts["eval_duplicate_traces_unused"] += 1
            else:
                eval_seen.add(ident)
                eval_candidates.append((u, tr))
            continue
        if ident in exclude:
            counts["labelled_traces_excluded"] += 1
            counts["labelled_records_excluded"] += len(tr.records)
            continue
        target = train if split == "train" else val
        if split == "val" and len(val) >= val_examples:
            continue
        for r in tr.records:
            target.add(vocab, r.term, r.span, ident)
        if split == "train":
            train_steps[tr.records[0].steps_total] += 1
            train_lengths.update(len(r.term) for r in tr.records)
    eval_candidates.sort(key=lambda c: c[0])
    chosen = [tr for _, tr in eval_candidates[:eval_traces]]
    invalid = v.lines - v.valid_records
    report = {
        "lines": v.lines,
        "valid_records": v.valid_records,
        "invalid_records": invalid,
        "invalid_fraction": invalid / v.lines if v.lines else 0.0,
        "traces": v.traces,
        "complete_traces": v.complete_traces,
        "problems": len(v.problems),
        "problems_by_reason": dict(v.counts.most_common()),
        "train_examples": len(train),
        "train_tokens": train.tokens(),
        "val_examples": len(val),
        "eval_traces": len(chosen),
        "eval_examples": sum(len(t.records) for t in chosen),
        **dict(counts),
        # the training data's shape: term length (code points) per example, steps per trace
        "train_shape": {"length": shape_histogram(train_lengths),
                        "steps": shape_histogram(train_steps)},
    }
    return Dataset(vocab, train, val, chosen, v, report)


@dataclass
class Suite:
    """An evaluation suite as read: its complete traces (one per identity), in file order."""

    name: str
    file: str
    traces: list[TraceResult]
    problems: list
    steps: int  # records of its traces


def load_suite(name: str, path: Path, max_invalid: float) -> Suite:
    """Read and validate a suite file like training data (``read_traces``); ConfigError, naming
    the file and line of its first problems, when more than ``max_invalid`` of its records are
    invalid or no trace is complete. Only complete traces are kept (evaluated whole)."""
    from .config import ConfigError

    v = TraceValidator()
    traces = unique_traces(tr for tr in read_traces([path], v) if tr.complete and tr.records)
    first = "; ".join(str(p) for p in v.problems[:3])
    invalid = v.lines - v.valid_records
    if v.lines and invalid / v.lines > max_invalid:
        raise ConfigError(f"suite {name}: {invalid} of {v.lines} records of {path} are invalid, above "
                          f"{{max_invalid}} {100 * max_invalid:.2f}%: {first}")
    if not traces:
        raise ConfigError(f"suite {name}: {path} has no complete trace" + (f": {first}" if first else ""))
    return Suite(name, str(path), traces, list(v.problems), sum(len(t.records) for t in traces))
