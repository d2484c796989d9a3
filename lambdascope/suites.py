"""Evaluation suites: named trace files made to test whether a model generalises past its
training distribution (docs/DESIGN.md, "Evaluation suites"). A suite is an ordinary trace file;
this module says how each standard suite is generated, relative to the training caps, and
parses the trainer's ``NAME=FILE`` suite arguments. Nothing here generates: the command line
runs the generator (``lambdascope suite make``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .families import FAMILY_NAMES
from .generate import DEFAULT_MAX_LEN, DEFAULT_MAX_STEPS

SUITE_SEED = 9001  # the suites' default seed: not a training seed (generate 0, demo 1, quality 2024)
DEFAULT_SIZE = 200  # traces per suite
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # fits checkpoints.suite


@dataclass(frozen=True)
class SuitePlan:
    """How one suite is generated: the generator's options, and for ``deeper`` the filter
    ``steps_total > keep_steps_above`` applied to the complete traces it writes."""

    family: str = "random"
    max_len: int = DEFAULT_MAX_LEN
    max_steps: int = DEFAULT_MAX_STEPS
    min_len: int | None = None
    min_steps: int | None = None
    keep_steps_above: int | None = None


def _heldout(len_cap: int, steps_cap: int) -> SuitePlan:
    return SuitePlan(max_len=len_cap, max_steps=steps_cap)


def _longer(len_cap: int, steps_cap: int) -> SuitePlan:
    return SuitePlan(max_len=2 * len_cap, max_steps=steps_cap, min_len=len_cap)


def _deeper(len_cap: int, steps_cap: int) -> SuitePlan:
    # the generator keeps at least 5/8 of the cap (a pre-filter every index meets within its
    # attempts); of those, only the traces past the cap are kept
    return SuitePlan(max_len=len_cap, max_steps=2 * steps_cap, min_steps=max(1, steps_cap * 5 // 8),
                     keep_steps_above=steps_cap)


def _family(name: str):
    return lambda len_cap, steps_cap: SuitePlan(family=name, max_len=len_cap, max_steps=steps_cap)


# name -> (one-line description, plan from the training caps (max-len, max-steps))
SUITES: dict[str, tuple[str, object]] = {
    "heldout": ("the training distribution (random family, the training caps), another seed", _heldout),
    "longer": ("random terms past the training max-len, up to twice it (--min-len CAP --max-len 2xCAP)",
               _longer),
    "deeper": ("random traces with more steps than the training max-steps, up to twice it (max-len as "
               "in training)", _deeper),
    **{f: (f"the {f} family at the training caps", _family(f)) for f in FAMILY_NAMES if f != "random"},
}
SUITE_NAMES = tuple(SUITES)


def suite_plan(name: str, train_max_len: int = DEFAULT_MAX_LEN,
               train_max_steps: int = DEFAULT_MAX_STEPS) -> SuitePlan:
    """The plan of a standard suite; ValueError names the known suites."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}: choose one of {', '.join(SUITE_NAMES)}")
    return SUITES[name][1](train_max_len, train_max_steps)


def suites_help() -> str:
    """One line per standard suite, for --help."""
    return "\n".join(f"  {name:<12} {text}" for name, (text, _) in SUITES.items())


def parse_suite_arg(text: str) -> tuple[str, str]:
    """``NAME=FILE`` -> (name, file); ValueError says what is wrong."""
    name, sep, path = text.partition("=")
    if not sep:
        raise ValueError(f"expected NAME=FILE, got {text!r}")
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"a suite name is letters, digits, '_', '.', '-' (at most 64), got {name!r} in {text!r}")
    if not path:
        raise ValueError(f"no file after '=' in {text!r}")
    return name, path
