"""torchrun / DDP plumbing: one process per GPU when WORLD_SIZE > 1, a no-op otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes (NCCL on CUDA, Gloo on CPU); pick this rank's device."""
    from ..device import pick_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), pick_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local), device


def active() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1


def all_reduce(t: torch.Tensor, average: bool = False) -> torch.Tensor:
    """Sum (or mean) over ranks, in place; identity in a single process."""
    if active():
        torch_dist.all_reduce(t)
        if average:
            t /= torch_dist.get_world_size()
    return t


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """Maximum over ranks, in place; identity in a single process."""
    if active():
        torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return t


def barrier() -> None:
    if active():
        torch_dist.barrier()


def cleanup() -> None:
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
