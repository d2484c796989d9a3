"""What every command shares: the one-line usage error, the argument parser that prints one
line, the flag types (all through ``lambdascope.numbers.parse_number``), and where the
``lambda-gen`` binary is."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Callable

from lambdascope.numbers import NumberError, parse_number

EXIT_FAILED = 1  # the work could not be done (a run that failed, a check that found problems)
EXIT_USAGE = 2  # bad input from the person at the keyboard
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


class UsageError(Exception):
    """Bad input from the person at the keyboard: printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def number_type(**bounds) -> Callable[[str], int | float]:
    """A flag's ``type=`` for argparse, through the one bounded-number parser; argparse names
    the flag itself, so the message is the detail alone."""

    def parse(text: str):
        try:
            return parse_number(text, name="", **bounds)
        except NumberError as e:
            raise argparse.ArgumentTypeError(e.detail) from None

    return parse


positive_int = number_type(lo=1, expected="expected a positive integer, got {text}",
                           out_of_range="expected a positive integer, got {text}")
nonneg_int = number_type(lo=0, expected="expected an integer >= 0, got {text}",
                         out_of_range="expected an integer >= 0, got {text}")
positive_float = number_type(kind=float, lo=0, lo_open=True,
                             expected="expected a positive number, got {text}",
                             out_of_range="expected a positive number, got {text}")
at_least_one = number_type(kind=float, lo=1, expected="expected a number >= 1, got {text}",
                           out_of_range="expected a number >= 1, got {text}")
port = number_type(lo=1, hi=65535, expected="expected a port number, got {text}",
                   out_of_range="expected a port between 1 and 65535, got {value}")


def fraction(text: str) -> float:
    """0.01, or 1% for the same."""
    pct = text.endswith("%")
    shown = repr(text).replace("{", "{{").replace("}", "}}")  # the whole text, % included
    try:
        value = parse_number(text[:-1] if pct else text, name="", kind=float, lo=0,
                             hi=100 if pct else 1,
                             expected=f"expected a fraction such as 0.01 or 1%, got {shown}",
                             out_of_range=f"expected a fraction between 0 and 1, got {shown}")
    except NumberError as e:
        raise argparse.ArgumentTypeError(e.detail) from None
    return value / 100 if pct else value


def find_generator() -> Path | None:
    """The ``lambda-gen`` binary: built in the repository, else on PATH."""
    built = REPO_ROOT / "lambda_gen_rs" / "target" / "release" / "lambda-gen"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which("lambda-gen")
    return Path(found) if found else None
