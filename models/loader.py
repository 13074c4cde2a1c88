"""Seeded mini-batches over in-memory tensors, with random horizontal flips and zooms,
cropped to the content of their images."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from models.train import SizedBatches


class Batches:
    """Iterate shuffled batches of a dict of equally long tensors; known length per epoch.

    Every tensor with 3 or more dimensions is spatial and is flipped (last dimension)
    together with the others for a random half of the samples. Each pass draws a new
    order from one generator, so a run with the same seed sees the same batches.

    With ``zoom_min`` < 1 every sample is also cropped to a random square of
    ``s`` x its side, s uniform in [zoom_min, 1], and scaled back up: float images (4-D)
    bilinearly, label-like tensors (3-D: masks, pseudo labels, weights, valid) by nearest
    neighbour so that labels stay labels. Crops lie inside the frame, so nothing new
    (no unlabelled border) enters.

    Args:
        tensors: name → tensor with the sample count as first dimension.
        batch_size: samples per batch (the last one of each orientation may be smaller;
            a single sample left over joins a neighbouring batch instead).
        seed: seeds the order and the flips.
        shuffle: draw a random order each epoch.
        flip: flip a random half of each batch.
        zoom_min: smallest crop side as a share of the image's (1: no zoom).
        tight: with a ``valid`` tensor (True inside each image, top-left aligned as
            models.transforms pads), batch landscape images with landscape ones and
            portrait with portrait, and crop each batch to the box its images fill
            (see :func:`content_box`): a 3:2 photo padded to a square is a third padding,
            which costs compute and teaches nothing.
    """

    def __init__(
        self,
        tensors: Mapping[str, Tensor],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        flip: bool = True,
        zoom_min: float = 1.0,
        tight: bool = True,
    ) -> None:
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"tensors differ in length: {sizes}")
        self.tensors = dict(tensors)
        self.size = sizes.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.flip = flip
        if not 0 < zoom_min <= 1:
            raise ValueError(f"zoom_min must be in (0, 1], got {zoom_min}")
        self.zoom_min = zoom_min
        self.generator = torch.Generator().manual_seed(seed)
        valid = self.tensors.get("valid")
        self.extents = extents_of(valid) if tight and valid is not None else None

    def __len__(self) -> int:
        return len(self._chunks(torch.arange(self.size)))

    def _chunks(self, order: Tensor) -> list[Tensor]:
        """``order`` in batches; with extents, landscape and portrait rows apart."""
        if self.extents is None:
            return _without_singles(list(order.split(self.batch_size)))
        landscape = self.extents[order, 1] >= self.extents[order, 0]
        groups = (order[landscape], order[~landscape])
        chunks = [chunk for group in groups if len(group) for chunk in group.split(self.batch_size)]
        return _without_singles(chunks)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        order = (
            torch.randperm(self.size, generator=self.generator)
            if self.shuffle
            else torch.arange(self.size)
        )
        chunks = self._chunks(order)
        if self.shuffle and self.extents is not None:  # mix the orientations' batches
            chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=self.generator)]
        for index in chunks:
            batch = {name: t[index] for name, t in self.tensors.items()}
            if self.extents is not None:
                batch = crop_spatial(batch, content_box(self.extents[index]))
            if self.flip:
                flipped = torch.rand(len(index), generator=self.generator) < 0.5
                for t in batch.values():
                    if t.ndim >= 3:
                        t[flipped] = t[flipped].flip(-1)
            if self.zoom_min < 1:
                batch = self._zoom(batch)
            yield batch

    def _zoom(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        n = len(next(iter(batch.values())))
        scale = self.zoom_min + (1 - self.zoom_min) * torch.rand(n, generator=self.generator)
        # Centre offset in [-(1 - s), 1 - s] (normalised coordinates) keeps the crop inside.
        shift = (1 - scale)[:, None] * (2 * torch.rand(n, 2, generator=self.generator) - 1)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = scale
        theta[:, :, 2] = shift
        spatial = [t for t in batch.values() if t.ndim >= 3]
        if not spatial:
            return batch
        height, width = spatial[0].shape[-2:]
        # One sampling grid for every spatial tensor: they share the crop and the size.
        grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
        out = {}
        for name, t in batch.items():
            if t.ndim < 3:
                out[name] = t
                continue
            image = t.ndim == 4 and t.is_floating_point()
            x = t.float() if image else t[:, None].float()
            y = F.grid_sample(x, grid, mode="bilinear" if image else "nearest", align_corners=False)
            out[name] = y if image else y[:, 0].to(t.dtype)
        return out


def _without_singles(chunks: list[Tensor]) -> list[Tensor]:
    """``chunks`` with every batch of one sample joined to a neighbour: batch norm in
    training mode cannot normalise a single sample's 1x1 map (the quick profile's 32 px
    images reach one at the encoder's end) and learns noise from any one-sample batch."""
    out: list[Tensor] = []
    for chunk in chunks:
        if len(chunk) == 1 and out:
            out[-1] = torch.cat([out[-1], chunk])
        else:
            out.append(chunk)
    if len(out) > 1 and len(out[0]) == 1:
        out[1] = torch.cat([out[0], out[1]])
        out.pop(0)
    return out


def extents_of(valid: Tensor) -> Tensor:
    """(N, 2) long (h, w) of each image's area in a (N, S, S) top-left ``valid`` mask."""
    return torch.stack([valid[:, :, 0].sum(1), valid[:, 0, :].sum(1)], dim=1).long()


def content_box(extents: Tensor, multiple: int = 32) -> tuple[int, int]:
    """(h, w) holding every extent, rounded up to ``multiple`` (the trunk's stride), so
    every feature map stays whole; :func:`crop_spatial` caps it at the canvas."""
    h, w = (int(v) for v in extents.amax(0))
    return math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple


def crop_spatial(batch: dict[str, Tensor], box: tuple[int, int]) -> dict[str, Tensor]:
    """Every tensor of 3+ dimensions cut to its top-left ``box`` (the rest unchanged)."""
    h, w = box
    return {n: t[..., :h, :w].contiguous() if t.ndim >= 3 else t for n, t in batch.items()}


Perturbation = Callable[[dict[str, Tensor], torch.Generator], dict[str, Tensor]]


class PerturbedBatches:
    """A loader whose batches pass through ``perturbations`` in order (e.g. CutMix, then
    colour jitter); each has its own generator, seeded ``seed``, ``seed + 1``, ..., so
    turning one on leaves the others' draws as they were."""

    def __init__(
        self,
        loader: SizedBatches,
        perturbations: list[Perturbation],
        seed: int,
    ) -> None:
        self.loader = loader
        self.perturbations = perturbations
        self.generators = [
            torch.Generator().manual_seed(seed + i) for i in range(len(perturbations))
        ]

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        for batch in self.loader:
            for perturb, generator in zip(self.perturbations, self.generators, strict=True):
                batch = perturb(batch, generator)
            yield batch
