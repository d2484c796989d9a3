"""The ``lambdascope`` command line: the composition root, the one place that imports the core
(lambdascope/), the trainer (trainer/) and the dashboard (app/) together. The libraries raise
their own errors; here they become one-line messages and exit codes:

- 2: bad input (a flag, a file that is missing, a configuration that cannot run, settings the
  server cannot start with);
- 1: the work failed (a run that stopped on an error, a check that found problems);
- 130: interrupted.
"""

from __future__ import annotations

import sys

from app.settings import SettingsError
from lambdascope.numbers import NumberError
from lambdascope.traces import TraceFileError

from . import dashboard, data, demo, exchange, shrink, suites, training
from .common import EXIT_USAGE, Parser, UsageError


def build_parser() -> Parser:
    p = Parser(prog="lambdascope", description="Train small models to find the next redex of "
               "a λ-term (normal order) and inspect what they get wrong. The data contract (trace "
               "format, printing, spans and offsets, IoU) is docs/DESIGN.md.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    data.register(sub)  # generate, check, db
    suites.register(sub)  # suite make
    training.register(sub)  # train, evaluate
    exchange.register(sub)  # import, export
    dashboard.register(sub)  # serve, labels
    demo.register(sub)  # demo
    shrink.register(sub)  # shrink
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, TraceFileError, NumberError, SettingsError) as e:
        print(f"lambdascope {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
