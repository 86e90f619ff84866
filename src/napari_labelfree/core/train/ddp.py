"""Several processes training one model: DistributedDataParallel, one process per GPU.

Started by ``torchrun --nproc-per-node N -m napari_labelfree train ...`` (or ``labelfree train
--gpus N``, which runs that), or by any program that set up ``torch.distributed`` before calling
``iter_train``. Every process (rank) holds the whole network, draws its own random patches (its
own stream, from the seed and its rank) and takes the same optimizer step on the gradients
averaged over all ranks; the batch size is per rank, so N ranks train on N times the patches per
iteration. Rank 0 alone writes: checkpoint, log, loss curve and bundle.

The checkpoint is the single-process one (the network without its wrapper, rank 0's random
states), so a run resumes with any number of processes, one included. Ranks other than 0 restart
their patch streams from (seed, rank, iteration) when resuming: a resumed multi-process run is a
correct continuation, not a bit-identical one.
"""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


def init_from_env(device: str = "auto") -> bool:
    """Join the process group torchrun describes in the environment; False when there is none.

    NCCL when the ranks train on CUDA, gloo otherwise (the CPU, and the tests).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    use_cuda = torch.cuda.is_available() and not str(device).startswith(("cpu", "mps"))
    if use_cuda:
        torch.cuda.set_device(_local_rank() % torch.cuda.device_count())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def shutdown() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (rank 0 of 1 when alone)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Ranks:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        """Whether this process writes the files (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def device(self, dev: torch.device) -> torch.device:
        """Each rank on its own GPU when 'cuda' did not name one."""
        if self.distributed and dev.type == "cuda" and dev.index is None:
            return torch.device("cuda", _local_rank() % torch.cuda.device_count())
        return dev

    def patch_rng(self, seed: int) -> np.random.Generator:
        """This rank's patch stream; rank 0's is the single-process one."""
        return np.random.default_rng(seed if self.rank == 0 else [seed, self.rank])

    def reseed(self, seed: int, iteration: int, patch_rng: np.random.Generator) -> None:
        """Ranks other than 0: their own torch / numpy / python streams (and patches, resuming).

        Called after the network is built (its initial weights come from the seed alone, and
        DistributedDataParallel copies rank 0's anyway) and after a checkpoint is restored (it
        holds rank 0's streams).
        """
        if self.rank == 0:
            return
        key = [seed, self.rank, iteration]
        torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
        np.random.seed(np.random.SeedSequence(key).generate_state(1)[0])
        random.seed(str(key))
        if iteration:
            patch_rng.bit_generator.state = np.random.default_rng(key).bit_generator.state

    def wrap(self, net: torch.nn.Module, dev: torch.device) -> torch.nn.Module | None:
        """The DistributedDataParallel wrapper that averages gradients; None when alone."""
        if not self.distributed:
            return None
        from torch.nn.parallel import DistributedDataParallel

        # The one-channel input convolution's weight has ambiguous channels-last strides, and DDP
        # says once that its gradient is copied into the bucket: harmless, and not the user's to fix.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ids = [dev.index] if dev.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)

    def mean_losses(self, pending: list[torch.Tensor]) -> list[float]:
        """Each step's loss averaged over the ranks, read on the host in one synchronization."""
        if not pending:
            return []
        losses = torch.stack(pending).float()
        if self.distributed:
            dist.all_reduce(losses, op=dist.ReduceOp.SUM)
            losses /= self.world
        return [float(v) for v in losses.cpu().tolist()]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


class NullLog:
    """The training log of ranks other than 0: they write nothing."""

    rows: list[dict[str, str]] = []  # noqa: RUF012 (never written to)

    def append(self, row: dict[str, object]) -> None:
        pass

    def close(self) -> None:
        pass
