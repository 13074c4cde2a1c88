"""Seeded mini-batches over in-memory tensors, with random horizontal flips."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor


class Batches:
    """Iterate shuffled batches of a dict of equally long tensors; known length per epoch.

    Every tensor with 3 or more dimensions is spatial and is flipped (last dimension)
    together with the others for a random half of the samples. Each pass draws a new
    order from one generator, so a run with the same seed sees the same batches.

    Args:
        tensors: name → tensor with the sample count as first dimension.
        batch_size: samples per batch (the last batch may be smaller).
        seed: seeds the order and the flips.
        shuffle: draw a random order each epoch.
        flip: flip a random half of each batch.
    """

    def __init__(
        self,
        tensors: Mapping[str, Tensor],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        flip: bool = True,
    ) -> None:
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"tensors differ in length: {sizes}")
        self.tensors = dict(tensors)
        self.size = sizes.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.flip = flip
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = (
            torch.randperm(self.size, generator=self.generator)
            if self.shuffle
            else torch.arange(self.size)
        )
        for start in range(0, self.size, self.batch_size):
            index = order[start : start + self.batch_size]
            batch = {name: t[index] for name, t in self.tensors.items()}
            if self.flip:
                flipped = torch.rand(len(index), generator=self.generator) < 0.5
                for t in batch.values():
                    if t.ndim >= 3:
                        t[flipped] = t[flipped].flip(-1)
            yield batch
