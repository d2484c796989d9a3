"""``lambdascope demo``: the main job in one command. Generate a data set (if absent), train in
the background into a SQLite store under runs/ (continuing an earlier demo run), and serve the
dashboard in the foreground. Ctrl-C stops the server, then the trainer, cleanly."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .common import UsageError, find_generator, port, positive_float, positive_int

RUN_NAME = "demo"
SUITES = ("longer", "church", "bool", "pairs", "combinators")  # evaluated beside the held-out set
TRAINER_STOP_TIMEOUT_S = 60


def say(msg: str) -> None:
    print(f"\033[1mdemo:\033[0m {msg}" if sys.stderr.isatty() else f"demo: {msg}",
          file=sys.stderr, flush=True)


def register(sub) -> None:
    d = sub.add_parser("demo", help="generate, train in the background and serve the dashboard",
                       description="The whole flow in one command: generate traces (if the data file "
                       "is absent), start training in the background into a SQLite store under runs/ "
                       "(continuing an earlier demo run), and serve the dashboard. Ctrl-C stops both "
                       "cleanly; running it again continues.")
    d.add_argument("--traces", type=positive_int, default=20000, help="traces to generate (default 20000)")
    d.add_argument("--data", default="data/demo.jsonl", help="data file (default data/demo.jsonl)")
    d.add_argument("--minutes", type=positive_float, default=30.0, help="training minutes (default 30)")
    d.add_argument("--eval-every", default="30s", help="evaluate every N steps or T seconds (default 30s)")
    d.add_argument("--port", type=port, default=8000, help="dashboard port (default 8000)")
    d.add_argument("--runs-dir", default="runs", help="store and checkpoints folder (default runs)")
    d.add_argument("--no-train", action="store_true", help="only serve what is in the store")
    d.add_argument("--suite-size", type=positive_int, default=60,
                   help=f"traces per evaluation suite ({', '.join(SUITES)}; default 60), made next to the data")
    d.add_argument("--no-suites", action="store_true", help="evaluate the held-out set only")
    d.add_argument("train_args", nargs=argparse.REMAINDER, metavar="-- TRAIN_OPTIONS",
                   help="options passed on to `lambdascope train` (after --)")
    d.set_defaults(func=cmd_demo)


def _generate(path: Path, traces: int) -> None:
    exe = find_generator()
    if exe is None:
        raise UsageError("lambda-gen is not built: run `make demo` (it builds it) or `make build`")
    path.parent.mkdir(parents=True, exist_ok=True)
    say(f"generating {traces} traces into {path}")
    r = subprocess.call([str(exe), "generate", str(path), str(traces), str(os.cpu_count() or 1),
                         "--seed", "1"])
    if r != 0:
        raise SystemExit(r)


def _make_suites(data: Path, size: int) -> list[str]:
    """The demo's suites next to its data (made once): ``--suite NAME=FILE`` values."""
    from .suites import make_suite

    out = []
    for name in SUITES:
        path = data.parent / f"{data.stem}-suite-{name}.jsonl"
        if not (path.is_file() and path.stat().st_size > 0):
            if not make_suite(name, path, size=size, threads=os.cpu_count() or 1, quiet=True):
                raise SystemExit(1)
        out.append(f"{name}={path}")
    say(f"evaluation suites: {', '.join(SUITES)} ({data.parent}/{data.stem}-suite-*.jsonl)")
    return out


def _start_trainer(args, data: Path, db_url: str, runs: Path, log_path: Path,
                   suites: list[str] = ()) -> subprocess.Popen:
    out_dir = runs / RUN_NAME
    resume = out_dir.is_dir() and any(out_dir.glob("*.pt"))
    peak = runs / "peak.json"
    if not peak.exists():  # the machine's matmul peak, once, so that the run page shows MFU
        say("measuring this machine's matmul peak for MFU (a few seconds, once)")
        from trainer.peak import measure_peak

        measure_peak(peak, seconds=0.3)
    cmd = [sys.executable, "-m", "lambdascope.cli", "train", "--data", str(data), "--db", db_url,
           "--run-name", RUN_NAME, "--out-dir", str(out_dir), "--minutes", str(args.minutes),
           "--eval-every", args.eval_every, "--peak-file", str(peak)]
    for suite in suites:
        cmd += ["--suite", suite]
    if resume:
        cmd.append("--resume")
    cmd += [a for a in args.train_args if a != "--"]
    say(("continuing" if resume else "starting") + f" training in the background ({args.minutes:g} "
        f"minutes); log: {log_path}")
    log = open(log_path, "ab")
    # its own session: Ctrl-C reaches the demo only, which then stops the trainer in order;
    # and should the demo die without that, the kernel sends the trainer SIGINT itself
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_interrupt_when_parent_dies)


def _interrupt_when_parent_dies() -> None:
    """In the child before exec: ask Linux for SIGINT when the parent exits (PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the demo's own shutdown path still stops the trainer


def stop_trainer(proc: subprocess.Popen | None) -> int | None:
    """Ask the trainer to stop (SIGINT: it finishes the step, writes what is queued, marks the run
    stopped) and wait; escalate only if it does not exit."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    say("stopping the trainer (it saves its state and closes the store)…")
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(TRAINER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        say("the trainer did not stop in time: terminating it")
        proc.terminate()
        return proc.wait(10)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _check_port_free(port: int) -> None:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise UsageError(f"port {port} on 127.0.0.1 is in use: pass --port with a free one") from None


def cmd_demo(args: argparse.Namespace) -> int:
    import uvicorn

    from app.settings import serve_settings

    from .dashboard import create_dashboard

    _check_port_free(args.port)
    runs = Path(args.runs_dir)
    runs.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    db_url = f"sqlite:///{runs / 'demo.db'}"
    t0 = time.perf_counter()
    if data.is_file() and data.stat().st_size > 0:
        say(f"using the existing data set {data}")
    else:
        _generate(data, args.traces)
    # create (or upgrade) the store once, here, before two processes open it at the same moment
    from lambdascope.store import open_store

    open_store(db_url)[0].dispose()
    proc = None
    if not args.no_train:
        suites = [] if args.no_suites else _make_suites(data, args.suite_size)
        proc = _start_trainer(args, data, db_url, runs, runs / "demo-train.log", suites)
    settings = serve_settings(db_url, "127.0.0.1", None)
    config = uvicorn.Config(create_dashboard(settings), host="127.0.0.1", port=args.port, log_level="warning")
    server = uvicorn.Server(config)
    say(f"dashboard: http://127.0.0.1:{args.port}/  (ready in {time.perf_counter() - t0:.1f} s; "
        "the first checkpoint appears after the first evaluation; Ctrl-C stops everything)")
    # SIGTERM stops the demo like Ctrl-C (uvicorn shuts down, then re-raises the signal here)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        code = stop_trainer(proc)
        if code in (130, -signal.SIGINT):
            say("trainer stopped with its state saved; run the demo again to continue")
        elif code == 0:
            say("trainer finished its minutes; run the demo again (or with more --minutes) to continue")
        elif code is not None:
            say(f"trainer exited with code {code}: see {runs / 'demo-train.log'}")
    return 0
