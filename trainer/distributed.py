"""Several training processes (``torchrun --nproc_per_node N``): DistributedDataParallel over
gloo on CPU, NCCL on GPU. Rank 0 alone writes the store and the checkpoints; every rank trains
on its own slice of each round of batches, so N processes with ``--batch-tokens B`` take the
same optimiser steps as one process with ``N x B``."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: str) -> tuple[Distributed, str]:
    """Join the process group when started by torchrun; returns the ranks and this process's
    device (``cuda:LOCAL_RANK`` on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Distributed(rank, world, local), device


def step_sync(d: Distributed, device: str, stop: bool, done: bool, real: int, numel: int
              ) -> tuple[bool, bool, int, int]:
    """One small all-reduce per step: any rank's stop request stops every rank; rank 0 decides
    when the budget is spent (ranks' clocks differ); token counts become global."""
    if not d.enabled:
        return stop, done, real, numel
    t = torch.tensor([float(stop), float(done and d.is_main), float(real), float(numel)],
                     dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t[0].item() > 0, t[1].item() > 0, int(t[2].item()), int(t[3].item())


def barrier(d: Distributed) -> None:
    if d.enabled:
        dist.barrier()


def finish(d: Distributed) -> None:
    """The end of a run that went well: every rank waits for rank 0's last evaluation; then
    the other ranks, which hold nothing to save, leave the process at once, skipping the
    teardown of the process group and of the interpreter. That teardown sometimes killed
    rank 1 with "terminate called without an active exception" (SIGABRT) after all the work
    was done (about 1 torchrun in 50 on 2 loaded cores), so torchrun reported a failure."""
    if not d.enabled:
        return
    dist.barrier()
    if not d.is_main:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def cleanup(d: Distributed) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
