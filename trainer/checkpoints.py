"""The checkpoint file: its format version, where files go, saving, listing, loading, and making
a saved file durable. A checkpoint carries everything needed to rebuild and compare it: the
model and training configurations, the vocabulary, the weights and optimiser state, the run's
id and name, the counters and the data position (``Training.checkpoint_payload``). The store
writer makes a saved file durable before its row is committed
(``lambdascope.writer.make_durable``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT_FORMAT = "lambdascope-span-model/1"
PATTERN = "ckpt_*.pt"


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / f"ckpt_{step:07d}.pt"


def checkpoint_files(out_dir: Path) -> list[Path]:
    """Checkpoints in ``out_dir``, oldest step first (none when the folder does not exist)."""
    if not out_dir.is_dir():
        return []
    return sorted(out_dir.glob(PATTERN), key=lambda p: int(p.stem.split("_")[1]))


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write to a temporary file in the same folder, then rename: a reader or a resumed run
    never sees half a checkpoint."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_stale_temporaries(out_dir: Path) -> None:
    """The temporary files of saves that a crash cut short."""
    for stale in out_dir.glob(".ckpt_*.tmp"):
        stale.unlink(missing_ok=True)


def read_checkpoint(path: str | Path, device: str = "cpu") -> dict:
    """The checkpoint's dict; ValueError when the file is not a lambdascope checkpoint."""
    ckpt = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: not a lambdascope checkpoint (format {found!r})")
    return ckpt
