"""torchrun support for stages that are not driven by Trainer (the teacher cache).

Trainer initialises DDP by itself; the cache pass needs the process group
only to shard the data and gather the rows.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed() -> torch.device:
    """Join the torchrun process group if there is one; return this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0
