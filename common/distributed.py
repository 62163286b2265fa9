"""Data-parallel training with PyTorch's own engine: torch.distributed, torchrun and DDP.

A run launched by torchrun (`torchrun --nproc_per_node=N runner.py --stage scaled ...`) trains one
model on N processes ("ranks"). The rule that keeps it the same training as one process:

- `batch_size` is the global batch. Every rank draws the same global batch from the run's seed
  and takes its own contiguous share of the rows (rank r of N: rows r*B/N .. (r+1)*B/N - 1).
  DistributedDataParallel averages the ranks' gradients, so each step uses the gradient of the
  mean loss over the whole global batch, as one process would, up to floating-point reduction order.
- Dropout masks are the exception: each rank draws the masks for its own rows from its own
  generator, seeded at every step from the run's seed, the rank and the step, so a run with dropout
  matches one process in distribution, not bit for bit (and a resumed run draws the masks of a run
  never stopped).
- Every rank evaluates the same batches with the same weights, so all ranks see the same losses
  and stop (NaN guard) at the same step; a stop request (Ctrl-C, SIGTERM) on any rank is shared
  with all ranks after every step, so they stop at the same step and rank 0 writes one checkpoint.
- Only rank 0 writes files.

NCCL is used on GPUs and gloo on CPUs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from common.errors import LadderError


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, batch_size: int) -> slice:
        """The rows of a global batch that this rank trains on."""
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any rank (a no-op with one process)."""
        if not self.active:
            return flag
        import torch
        import torch.distributed as dist
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        value = torch.tensor([1 if flag else 0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def from_rank0(self, value):
        """Rank 0's value on every rank (e.g. a measured choice, so that all ranks train alike)."""
        if not self.active:
            return value
        import torch.distributed as dist
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist
            dist.barrier()


SINGLE = World()


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by torchrun (it sets WORLD_SIZE and RANK)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def world_from_environment() -> World:
    try:
        return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError):
        raise LadderError("a torchrun launch must set RANK and WORLD_SIZE: start the run with "
                          "torchrun --nproc_per_node=N runner.py ...") from None


def start(device_request: str | None):
    """Join the process group of a torchrun launch: (World, this rank's device).

    On CUDA each rank takes the GPU of its local rank and NCCL; on the CPU, gloo.
    """
    import torch
    import torch.distributed as dist

    world = world_from_environment()
    wants_cuda = device_request in (None, "", "auto") and torch.cuda.is_available() \
        or (device_request or "").startswith("cuda")
    if wants_cuda:
        if not torch.cuda.is_available():
            raise LadderError(f"device {device_request!r} asked for, but CUDA is not available here: "
                              f"use --device cpu (gloo) with torchrun")
        if world.local_rank >= torch.cuda.device_count():
            raise LadderError(f"torchrun started {world.local_rank + 1}+ processes on this node but it has "
                              f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node={torch.cuda.device_count()}")
        backend, device = "nccl", torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    elif device_request in (None, "", "auto", "cpu"):
        backend, device = "gloo", torch.device("cpu")
    else:
        raise LadderError(f"device {device_request!r} cannot train with torchrun: use cuda (NCCL) or cpu (gloo)")
    if not dist.is_available() or not (dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available()):
        raise LadderError(f"the {backend} backend of torch.distributed is not available in this PyTorch build: "
                          f"use {'--device cpu (gloo)' if backend == 'nccl' else 'a build with gloo'}")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return world, device


def join(jobs: int | None, device_request: str | None):
    """(World, device) of a torchrun launch, or (one process, None) without one."""
    import sys
    if not launched_by_torchrun():
        return SINGLE, None
    if jobs not in (None, 1):
        raise LadderError("--jobs cannot be combined with a torchrun launch (its processes train one run "
                          "together): drop --jobs, or start runner.py without torchrun to train runs side by side")
    world, device = start(device_request)
    if not world.is_main:  # one voice: rank 0 prints the progress and the table, the others only errors
        sys.stdout = open(os.devnull, "w")
    return world, device


def finish(world: World | None = None) -> None:
    """Leave the process group, if this process joined one.

    Given this rank's `world` (the normal end), first wait until every rank gets here: a rank that
    left right after its last collective while its peer was still busy (rank 0 writing the
    checkpoint of a stopped run) was now and then aborted by gloo (SIGABRT, "terminate called
    without an active exception"). Without it (after an error), leave at once: the others may never come.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        if world is not None:
            world.barrier()
        dist.destroy_process_group()


def check_batch(batch_size: int, world: World, stage: str) -> None:
    if batch_size % world.world_size:
        raise LadderError(f"batch_size {batch_size} of stage {stage} is not divisible by the {world.world_size} "
                          f"processes torchrun started: choose --nproc_per_node dividing it, or "
                          f"--set batch_size=<a multiple of {world.world_size}>")
