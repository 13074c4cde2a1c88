"""Convert Clothing Co-Parsing (CCP) into the layout bench/quality.py reads.

CCP (github.com/bearpaw/clothing-co-parsing, Apache-2.0) holds 2,098 street-fashion
photos, 1,004 of them with pixel-level annotations over 59 labels (label 0 "null" is
the background, present in every mask, and most labels are small parts: belts,
sunglasses, bracelets). That is the shape of the papers' own setting (PASCAL VOC: a
background class in every image), which MSRC-v2 lacks, so it is the second development
dataset of the quality benchmark.

Usage (fetch the repository first; its snapshot is ~125 MB):

    python bench/convert_ccp.py SOURCE OUT [--categories 25] [--size 320]

SOURCE is a checkout (a folder with photos/, annotations/pixel-level/, label_list.mat)
or a bare git directory of it (read with ``git show``). OUT gets ``images/*.jpg``,
``masks/*.png`` (class index: 0 background, 1..K the kept categories, 255 unlabelled),
``classes.json`` and ``SOURCE.md``. The K categories held by the most annotated images
are kept in that order; pixels of the other labels become 255 (unlabelled), so they
neither teach nor score a category. Images are resized so the longer side is ``--size``
(bilinear; masks nearest), like MSRC-v2's 320 px. Written outside the project: data never
goes into the repository.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io as sio
from PIL import Image
from tqdm import tqdm

IGNORE = 255


def reader(source: Path) -> Callable[[str], bytes]:
    """Read a file of the dataset by its path, from a checkout or a bare git directory."""
    if (source / "label_list.mat").exists():
        return lambda path: (source / path).read_bytes()

    def from_git(path: str) -> bytes:
        return subprocess.run(
            ["git", "--git-dir", str(source), "show", f"HEAD:{path}"],
            check=True,
            capture_output=True,
        ).stdout

    return from_git


def list_annotated(source: Path) -> list[str]:
    """Stems of the pixel-annotated photos, sorted."""
    if (source / "annotations" / "pixel-level").is_dir():
        names = [p.name for p in (source / "annotations" / "pixel-level").glob("*.mat")]
    else:
        out = subprocess.run(
            [
                "git",
                "--git-dir",
                str(source),
                "ls-tree",
                "--name-only",
                "HEAD:annotations/pixel-level/",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        names = [n for n in out.split() if n.endswith(".mat")]
    return sorted(n.removesuffix(".mat") for n in names)


def load_mat(data: bytes, key: str) -> np.ndarray:
    return sio.loadmat(io.BytesIO(data))[key]


def label_names(read: Callable[[str], bytes]) -> list[str]:
    """CCP's 59 label names, index = label number (0 is "null", the background)."""
    cells = load_mat(read("label_list.mat"), "label_list")[0]
    return [str(cell[0]) if len(cell) else "" for cell in cells]


def choose_categories(label_sets: list[set[int]], keep: int) -> list[int]:
    """The ``keep`` labels (never 0) held by the most images; ties by label number."""
    counts = Counter(label for labels in label_sets for label in labels if label != 0)
    return [label for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:keep]]


def remap(groundtruth: np.ndarray, kept: list[int]) -> np.ndarray:
    """CCP labels → 0 background, 1..K kept categories (in ``kept`` order), 255 others."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    table[0] = 0
    for index, label in enumerate(kept, start=1):
        table[label] = index
    return table[groundtruth.astype(np.uint8)]


def resize_pair(image: Image.Image, mask: np.ndarray, size: int) -> tuple[Image.Image, np.ndarray]:
    """Longer side to ``size`` (never up): the photo bilinear, the mask nearest."""
    w, h = image.size
    scale = min(1.0, size / max(w, h))
    if scale == 1.0:
        return image, mask
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(mask).resize(shape, Image.Resampling.NEAREST)
    return image.resize(shape, Image.Resampling.BILINEAR), np.asarray(small)


def convert(source: Path, out: Path, categories: int, size: int, progress: bool = True) -> dict:
    """Write the layout; returns a summary (images, categories, label counts)."""
    read = reader(source)
    names = label_names(read)
    stems = list_annotated(source)
    if not stems:
        raise SystemExit(f"{source}: no pixel-level annotations found")
    truths = {}
    for stem in tqdm(stems, desc="read masks", disable=not progress):
        truths[stem] = load_mat(read(f"annotations/pixel-level/{stem}.mat"), "groundtruth")
    kept = choose_categories([set(np.unique(g).tolist()) for g in truths.values()], categories)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for stem in tqdm(stems, desc="write", disable=not progress):
        photo = Image.open(io.BytesIO(read(f"photos/{stem}.jpg"))).convert("RGB")
        mask = remap(truths[stem], kept)
        if mask.shape != (photo.size[1], photo.size[0]):
            raise SystemExit(f"{stem}: mask {mask.shape} vs photo {photo.size[::-1]}")
        photo, mask = resize_pair(photo, mask, size)
        photo.save(out / "images" / f"{stem}.jpg", quality=92)
        Image.fromarray(mask).save(out / "masks" / f"{stem}.png")
    classes = [{"id": 0, "name": "background"}] + [
        {"id": i, "name": names[label]} for i, label in enumerate(kept, start=1)
    ]
    (out / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
    (out / "SOURCE.md").write_text(
        "Clothing Co-Parsing (CCP), github.com/bearpaw/clothing-co-parsing, Apache-2.0.\n"
        f"Converted by tag2mask's bench/convert_ccp.py: {len(stems)} pixel-annotated photos, "
        f"longer side {size} px, background + the {len(kept)} labels on the most images "
        "(others unlabelled, 255).\n"
    )
    return {"images": len(stems), "categories": [c["name"] for c in classes]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="CCP checkout or bare git directory")
    parser.add_argument("out", type=Path, help="output folder (outside the project)")
    parser.add_argument("--categories", type=int, default=25, help="labels kept besides 0")
    parser.add_argument("--size", type=int, default=320, help="longer side in px")
    args = parser.parse_args()
    summary = convert(args.source, args.out, args.categories, args.size)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
