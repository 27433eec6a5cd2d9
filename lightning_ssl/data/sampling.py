"""Which items a process reads, in which order, with which random choices: a pure function of the seed, the epoch
and the position in it, so a run resumed mid-epoch reads exactly what the uninterrupted run would have read.

Written here rather than taken from PyTorch/Lightning: ``RandomSampler`` draws its order from the global RNG when
its iterator starts (before a resumed run can restore it), Lightning's injected ``DistributedSampler`` cannot start
mid-epoch, and random crops drawn from a worker's RNG depend on which worker read the item.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, DistributedSampler, Sampler


class Draw(int):
    """A dataset index that carries the seed (``key``) of the random choices made when reading it (crop positions)."""

    key: tuple[int, ...]

    def __new__(cls, index: int, key: Sequence[int]) -> "Draw":
        draw = super().__new__(cls, index)
        draw.key = tuple(int(k) for k in key)
        return draw

    def __reduce__(self) -> tuple[Any, ...]:
        return (Draw, (int(self), self.key))


def item_rng(index: int) -> np.random.Generator:
    """The generator of one read's random choices: seeded by the index's ``Draw`` key, else from torch's global RNG."""
    if isinstance(index, Draw):
        return np.random.default_rng(list(index.key))
    return np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))


def process_share() -> tuple[int, int]:
    """(rank, world size) of this process in the default process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochIndices(Sampler[int]):
    """The indices ``0 .. size - 1`` and the current epoch, which Lightning sets at every epoch start (it calls
    ``set_epoch`` on a batch sampler's ``sampler``, not on the batch sampler)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Record the epoch about to start."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.size))


class ShuffledBatches(BatchSampler):
    """Batches of ``Draw`` indices of ``sampler``'s items, in an order fixed by (``seed``, epoch, pass).

    Every process shuffles the same way and takes every world-size-th item of the order (the remainder is left out,
    so every process runs as many batches); when Lightning has put a ``DistributedSampler`` in (a Trainer of the
    user's own), that sampler's share is shuffled instead. The epoch is the sampler's (``EpochIndices`` or
    ``DistributedSampler``). A pass is one run through the order; a loader cycled inside an epoch (the shorter one of
    a semi-supervised pair) makes several passes. ``resume(epoch, batches)`` makes the next iteration start after
    ``batches`` batches of ``epoch``, as the interrupted run left it.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool, seed: int = 0) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.seed = seed
        self._passes = (0, 0)
        self._skip = 0

    @property
    def epoch(self) -> int:
        """The current epoch, as the sampler knows it."""
        return int(getattr(self.sampler, "epoch", 0))

    def resume(self, epoch: int, batches: int) -> None:
        """Start the next iteration after ``batches`` batches of ``epoch``."""
        self.sampler.set_epoch(epoch)
        passes, self._skip = divmod(batches, max(len(self), 1))
        self._passes = (epoch, passes)

    def _items(self) -> np.ndarray:
        """This process's items, in the sampler's order."""
        items = np.fromiter(iter(self.sampler), dtype=np.int64)
        if isinstance(self.sampler, DistributedSampler):
            return items
        return items[: items.size // process_share()[1] * process_share()[1]]

    def __len__(self) -> int:
        items = len(self.sampler) if isinstance(self.sampler, DistributedSampler) else len(self.sampler) // process_share()[1]
        return items // self.batch_size if self.drop_last else -(-items // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        passes = self._passes[1] if self._passes[0] == epoch else 0
        self._passes = (epoch, passes + 1)
        skip, self._skip = self._skip, 0
        items = self._items()
        order = items[np.random.default_rng([self.seed, epoch, passes]).permutation(items.size)]
        if not isinstance(self.sampler, DistributedSampler):
            rank, world = process_share()
            order = order[rank::world]
        for batch in range(skip, len(self)):
            chosen = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield [Draw(int(index), (self.seed, epoch, passes, int(index))) for index in chosen]


class ProcessShare(Sampler[int]):
    """This process's share of ``size`` items in their order, each item read by exactly one process (no padding)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        rank, world = process_share()
        return len(range(rank, self.size, world))

    def __iter__(self) -> Iterator[int]:
        rank, world = process_share()
        return iter(range(rank, self.size, world))


class Subset(Dataset):
    """Items ``indices`` of ``dataset``; a ``Draw`` index keeps its key (``torch.utils.data.Subset`` would drop it)."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        inner = self.indices[index]
        return self.dataset[Draw(inner, index.key) if isinstance(index, Draw) else inner]
