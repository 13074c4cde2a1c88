"""Dataset folders, the seeded stratified train/val split and the four labelings of the
quality benchmark (pure functions: arrays in, arrays out, no training).

Folder layout (any dataset, e.g. /work/shared/data/msrc_v2):
    images/<id>.jpg|png   RGB photos
    masks/<id>.png        single-channel class index, 255 = unlabelled
    classes.json          [{"id": 0, "name": "background"}, {"id": 1, "name": ...}, ...]

Every setting keeps every image's tags; what differs is which pixels of which training
images a network may see. ``Setting.visible`` holds exactly that, and ``labeling_data``
builds the only LabelingData a run is given from it; the full ("hidden") masks of the
training images stay in ``Dataset`` and are used for scoring only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from models.data import LabelingData

IGNORE = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
SETTINGS = ("transfer", "semi", "tags_only", "full")


@dataclass
class Dataset:
    """A folder's images, full masks, tags (every class 1..K with pixels) and class names."""

    ids: list[str]
    images: list[np.ndarray]  # HxWx3 uint8
    masks: list[np.ndarray]  # HxW uint8, 255 = unlabelled
    tags: list[frozenset[int]]
    num_classes: int  # K
    class_names: list[str]  # K+1 names, index 0 = background

    def __len__(self) -> int:
        return len(self.images)

    def categories(self, indices: Sequence[int] | None = None) -> list[int]:
        """Categories (1..K) tagged on at least one of ``indices`` (all images by default)."""
        chosen = range(len(self)) if indices is None else indices
        return sorted(set().union(*(self.tags[i] for i in chosen)) if chosen else set())


def tags_of(mask: np.ndarray, num_classes: int) -> frozenset[int]:
    """Categories 1..K with at least one pixel in a mask (background 0 is no tag)."""
    present = np.unique(mask)
    return frozenset(int(k) for k in present if 1 <= k <= num_classes)


def load_classes(path: Path) -> list[str]:
    """K+1 class names from classes.json (a list of {id, name} or a {id: name} map)."""
    raw = json.loads(path.read_text())
    pairs = (
        [(int(e["id"]), str(e["name"])) for e in raw]
        if isinstance(raw, list)
        else [(int(k), str(v)) for k, v in raw.items()]
    )
    if not pairs:
        raise ValueError(f"{path}: no classes")
    k = max(i for i, _ in pairs)
    names = [str(i) for i in range(k + 1)]
    names[0] = "background"
    for i, name in pairs:
        if i < 0 or i == IGNORE:
            raise ValueError(f"{path}: class id {i} is not allowed")
        names[i] = name
    return names


def load_dataset(root: str | Path, max_images: int | None = None, seed: int = 0) -> Dataset:
    """Read a dataset folder, sorted by id; ``max_images`` keeps a seeded random subset."""
    root = Path(root)
    names = load_classes(root / "classes.json")
    k = len(names) - 1
    if k < 1:
        raise ValueError(f"{root}: classes.json needs at least one category besides 0")
    files = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if max_images is not None and max_images < len(files):
        keep = np.random.default_rng(seed).choice(len(files), max_images, replace=False)
        files = [files[i] for i in sorted(int(i) for i in keep)]
    ids, images, masks, tags = [], [], [], []
    for path in files:
        mask_path = root / "masks" / f"{path.stem}.png"
        if not mask_path.exists():
            raise ValueError(f"{path.name}: no mask {mask_path}")
        image = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
        mask = np.asarray(Image.open(mask_path), dtype=np.uint8)
        if mask.ndim != 2 or mask.shape != image.shape[:2]:
            raise ValueError(f"{path.name}: mask {mask.shape} vs image {image.shape}")
        labelled = mask[mask != IGNORE]
        if labelled.size and int(labelled.max()) > k:
            raise ValueError(f"{mask_path.name}: class {int(labelled.max())} > {k}")
        ids.append(path.stem)
        images.append(image)
        masks.append(mask)
        tags.append(tags_of(mask, k))
    if not ids:
        raise ValueError(f"{root}/images holds no image")
    return Dataset(ids, images, masks, tags, k, names)


def stratified_split(
    tags: Sequence[frozenset[int]], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Seeded (train, val) indices, sorted and disjoint, with every category in val.

    Rarest category first, each category not yet in val gets one random image of it in
    val, chosen so that every category held by two or more images keeps one in train;
    then random images fill val up to round(val_fraction · n), again never taking a
    category's last training image. A category on a single image lands in val.
    """
    n = len(tags)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    counts: dict[int, int] = {}
    for t in tags:
        for k in t:
            counts[k] = counts.get(k, 0) + 1
    in_train = dict(counts)  # images of each category still in train
    val: set[int] = set()

    def can_move(i: int) -> bool:
        return all(in_train[k] > 1 or counts[k] == 1 for k in tags[i])

    def move(i: int) -> None:
        val.add(i)
        for k in tags[i]:
            in_train[k] -= 1

    order = [int(i) for i in rng.permutation(n)]
    for k in sorted(counts, key=lambda c: (counts[c], c)):
        if any(k in tags[i] for i in val):
            continue
        holders = [i for i in order if k in tags[i] and i not in val]
        pick = next((i for i in holders if can_move(i)), holders[0])
        move(pick)
    wanted = max(len(val), round(val_fraction * n))
    for i in order:
        if len(val) >= wanted:
            break
        if i not in val and can_move(i):
            move(i)
    if len(val) == n:
        raise ValueError("the split leaves no training image")
    return sorted(set(range(n)) - val), sorted(val)


def split_categories(categories: Sequence[int], seed: int) -> tuple[list[int], list[int]]:
    """Seeded halves of the categories: (half 0, half 1 = the complement), both sorted."""
    order = [int(c) for c in np.random.default_rng(seed).permutation(sorted(categories))]
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


@dataclass
class Setting:
    """One labeling of the training images: what annotators gave (``visible``).

    Attributes:
        name: "transfer", "semi", "tags_only", "full" (a transfer setting of the second
            half is "transfer_h1").
        train: dataset indices of the training images, in run order.
        visible: per training image, the mask a network may see (None = tags only).
        strong, weak: categories with / without painted pixels (transfer); every
            category is strong elsewhere except tags_only, where all are weak.
    """

    name: str
    train: list[int]
    visible: list[np.ndarray | None]
    strong: list[int]
    weak: list[int]
    info: dict[str, object] = field(default_factory=dict)

    @property
    def masked_positions(self) -> list[int]:
        return [p for p, m in enumerate(self.visible) if m is not None]

    @property
    def unmasked_positions(self) -> list[int]:
        return [p for p, m in enumerate(self.visible) if m is None]


def transfer_setting(
    ds: Dataset, train: Sequence[int], strong: Sequence[int], name: str = "transfer"
) -> Setting:
    """Only ``strong`` categories are painted: a training image holding one keeps its mask
    with the pixels of other categories set to 255 (background 0, where a dataset has it,
    stays); an image without a strong category has tags only."""
    strong_set = set(strong)
    visible: list[np.ndarray | None] = []
    for i in train:
        if not ds.tags[i] & strong_set:
            visible.append(None)
            continue
        mask = ds.masks[i].copy()
        weak_pixels = (mask != 0) & (mask != IGNORE) & ~np.isin(mask, sorted(strong_set))
        mask[weak_pixels] = IGNORE
        visible.append(mask)
    cats = ds.categories(train)
    return Setting(
        name,
        list(train),
        visible,
        sorted(strong_set & set(cats)),
        [k for k in cats if k not in strong_set],
    )


def pick_masked(tags: Sequence[frozenset[int]], fraction: float, seed: int) -> list[int]:
    """Seeded positions of round(fraction · n) (at least 1) images to mask: first one image
    per category (rarest first, as long as the budget lasts), then random ones."""
    n = len(tags)
    wanted = min(n, max(1, round(fraction * n)))
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(n)]
    counts: dict[int, int] = {}
    for t in tags:
        for k in t:
            counts[k] = counts.get(k, 0) + 1
    chosen: list[int] = []
    covered: set[int] = set()
    for k in sorted(counts, key=lambda c: (counts[c], c)):
        if len(chosen) >= wanted:
            break
        if k in covered:
            continue
        pick = next(i for i in order if k in tags[i] and i not in chosen)
        chosen.append(pick)
        covered |= tags[pick]
    for i in order:
        if len(chosen) >= wanted:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(chosen)


def semi_setting(ds: Dataset, train: Sequence[int], fraction: float, seed: int) -> Setting:
    """Full masks on a seeded ``fraction`` of the training images, tags on the rest."""
    picked = set(pick_masked([ds.tags[i] for i in train], fraction, seed))
    visible = [ds.masks[i].copy() if p in picked else None for p, i in enumerate(train)]
    return Setting(
        "semi",
        list(train),
        visible,
        ds.categories(train),
        [],
        {"mask_fraction": fraction, "masked_images": len(picked)},
    )


def tags_only_setting(ds: Dataset, train: Sequence[int]) -> Setting:
    """No mask at all."""
    return Setting("tags_only", list(train), [None] * len(train), [], ds.categories(train))


def full_setting(ds: Dataset, train: Sequence[int]) -> Setting:
    """Every training image with its full mask: the fully supervised reference."""
    return Setting(
        "full", list(train), [ds.masks[i].copy() for i in train], ds.categories(train), []
    )


def labeling_data(
    ds: Dataset, setting: Setting, positions: Sequence[int] | None = None
) -> LabelingData:
    """The LabelingData a run gets: training images (``positions`` of them, default all)
    with their tags and only the setting's visible masks."""
    chosen = range(len(setting.train)) if positions is None else positions
    return LabelingData(
        images=[ds.images[setting.train[p]] for p in chosen],
        tags=[ds.tags[setting.train[p]] for p in chosen],
        masks=[setting.visible[p] for p in chosen],
        num_classes=ds.num_classes,
        class_names=list(ds.class_names),
    )


def with_masks(ds: Dataset, setting: Setting, positions: Sequence[int], name: str) -> Setting:
    """A copy of ``setting`` where the training images at ``positions`` (tag-only ones)
    get their full masks, as if annotators had now painted them."""
    visible = list(setting.visible)
    for p in positions:
        if visible[p] is not None:
            raise ValueError(f"position {p} already has a mask")
        visible[p] = ds.masks[setting.train[p]].copy()
    return Setting(
        name,
        setting.train,
        visible,
        setting.strong,
        setting.weak,
        {**setting.info, "added_masks": sorted(int(p) for p in positions)},
    )


def check_no_hidden_masks(
    ds: Dataset, setting: Setting, data: LabelingData, positions: Sequence[int] | None = None
) -> None:
    """Raise AssertionError unless ``data`` holds exactly the setting's visible masks:
    None for tag-only images, never a labelled pixel the setting hides."""
    chosen = list(range(len(setting.train)) if positions is None else positions)
    if len(data) != len(chosen):
        raise AssertionError(f"{len(data)} images given, {len(chosen)} expected")
    for j, p in enumerate(chosen):
        given, visible = data.masks[j], setting.visible[p]
        if visible is None:
            if given is not None:
                raise AssertionError(
                    f"{setting.name}: tag-only image {p} reaches a network with a mask"
                )
            continue
        if given is None or given.shape != visible.shape or not np.array_equal(given, visible):
            raise AssertionError(f"{setting.name}: image {p} mask differs from its visible mask")
        full = ds.masks[setting.train[p]]
        painted = given != IGNORE
        if not np.array_equal(given[painted], full[painted]):
            raise AssertionError(f"{setting.name}: image {p} mask disagrees with the truth")
