"""Data-parallel training on PyTorch's own engine (torch.distributed, launched by torchrun)::

    torchrun --standalone --nproc-per-node 4 -m magan align x1.h5ad x2.h5ad --out run
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29500 --rdzv-id job42 -m magan align ...

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; magan reads them, joins
the process group (NCCL on CUDA, gloo on CPU), gives each rank its shard of cells and a seed
offset, and wraps the four networks in DistributedDataParallel so gradients are all-reduced.
Each rank draws ``batch_size`` cells per domain per step: the effective batch is
``world_size × batch_size``. Only rank 0 shows progress, writes checkpoints and outputs.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "barrier",
    "broadcast_from_main",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "local_device",
    "rank",
    "shard",
    "world_size",
]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_from_main(obj: object) -> object:
    """Rank 0's ``obj`` on every rank (a decision every rank must share, e.g. a data-driven
    choice that rounding on different hardware could flip); ``obj`` itself when not
    distributed."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def init_from_env(device: str = "auto") -> bool:
    """Join the process group described by torchrun's environment; False if not launched so.

    The backend follows the device: NCCL when training on CUDA, gloo on CPU.
    """
    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if dist.is_initialized():
        return True
    use_cuda = device != "cpu" and torch.cuda.is_available() and not str(device).startswith("cpu")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def local_device(device: torch.device) -> torch.device:
    """On CUDA, each rank uses the GPU of its LOCAL_RANK."""
    if is_distributed() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard(n: int) -> np.ndarray:
    """Row indices of this rank's shard: every world_size-th row, starting at the rank."""
    return np.arange(rank(), n, world_size())
