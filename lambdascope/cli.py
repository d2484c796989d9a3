"""The console script ``lambdascope`` and ``python -m lambdascope.cli``: the command line lives in
``lambdascope.commands`` (the composition root); this module only starts it."""

from __future__ import annotations

import sys

from lambdascope.commands import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
