"""Every command in the README runs (with small sizes), so the README cannot drift from the code.

Commands are the lines of the README's ```sh blocks. Sizes are shrunk by the rewrites below;
long-running commands (serve, demo) are started, asked for a page, and stopped with Ctrl-C.
`make demo` and `make test` are the exceptions: CI runs `make test` itself, and `make demo` is
`lambdascope demo` after the set-up that `make test` also runs (tests/test_demo.py covers it)."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.net import free_port

ROOT = Path(__file__).resolve().parent.parent
TINY = ("--n-layer 1 --n-head 2 --d-model 16 --d-ff 32 --threads 1 --batch-tokens 1024 "
        "--warmup-steps 2 --eval-traces 10")
REWRITES = [
    (r"\b(20000|50000)\b", "300"),
    (r"(lambdascope(?:\.cli)? train .*)--minutes \d+", rf"\1--steps 4 --eval-every 2 {TINY}"),
    (r"(lambdascope demo .*)--minutes \d+(.*)", rf"\1--minutes 5 --eval-every 3\2 -- {TINY}"),
    (r"(python examples/own_trainer\.py .*)--seconds \d+", r"\1--seconds 3 --eval-every 2 --traces 100 "
     r"--eval-traces 5 --d-model 16 --layers 1 --heads 2 --batch 16 --threads 1"),
]
SKIP = {"make demo", "make test"}
LONG_RUNNING = ("lambdascope serve", "lambdascope demo")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


def shrink(cmd: str) -> str:
    for pattern, repl in REWRITES:
        cmd = re.sub(pattern, repl, cmd)
    return cmd



def test_readme_has_the_two_commands_and_a_command_reference():
    cmds = readme_commands()
    assert cmds[:2] == ["make demo", "make test"]
    for sub in ("generate", "check", "train", "evaluate", "serve", "demo", "labels", "import", "export"):
        assert any(c.startswith(f"lambdascope {sub}") for c in cmds), sub
    assert any(c.startswith("lambda_gen_rs/target/release/lambda-gen") for c in cmds)
    assert any(c.startswith("python examples/own_trainer.py") for c in cmds)


def test_every_readme_command_runs(tmp_path, pg_url_or_none):
    """The README's PostgreSQL URL points at a fresh database in the session's throwaway cluster
    (pg_url_or_none, tests/conftest.py; None: PostgreSQL cannot run here, and those commands are
    left out)."""
    pg_url = pg_url_or_none
    (tmp_path / "lambda_gen_rs").symlink_to(ROOT / "lambda_gen_rs")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}")
    ran = 0
    for cmd in readme_commands():
        if cmd in SKIP:
            continue
        cmd = shrink(cmd)
        if "postgresql+psycopg://" in cmd:
            if pg_url is None:
                continue
            cmd = re.sub(r"postgresql\+psycopg://\S+", pg_url, cmd)
        if cmd.startswith(LONG_RUNNING):
            port = free_port()
            cmd = re.sub(r"--port \d+", f"--port {port}", cmd)
            proc = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=tmp_path, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert proc.poll() is None and time.monotonic() < deadline, (cmd, proc.stdout.read())
                    time.sleep(0.3)
            finally:
                proc.send_signal(signal.SIGINT)
                out, _ = proc.communicate(timeout=90)
            assert proc.returncode == 0, (cmd, out[-3000:])
        else:
            r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-3000:])
        ran += 1
    assert ran >= 20 if pg_url else ran >= 17
