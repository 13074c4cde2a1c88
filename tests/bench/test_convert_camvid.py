"""bench/convert_camvid.py on a tiny CamVid-shaped checkout made here (SegNet's folders
and class indices), read back with the quality benchmark's own loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from bench.convert_camvid import convert
from bench.quality_data import load_dataset


def _camvid(root: Path) -> None:
    """Three 40x60 photos in train/val/test; SegNet indices: road (3) everywhere, a pole
    (2) on all, a car (8) on two, a pedestrian (9) on one, a strip of unlabelled (11)."""
    rng = np.random.default_rng(0)
    for i, split in enumerate(("train", "val", "test")):
        (root / "CamVid" / split).mkdir(parents=True)
        (root / "CamVid" / f"{split}annot").mkdir(parents=True)
        annot = np.full((40, 60), 3, np.uint8)
        annot[:5] = 0  # sky
        annot[10:30, 5:7] = 2
        if i < 2:
            annot[20:30, 20:40] = 8
        if i == 0:
            annot[15:30, 45:50] = 9
        annot[38:] = 11
        name = f"0001TP_00{i}.png"
        Image.fromarray(annot).save(root / "CamVid" / f"{split}annot" / name)
        photo = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(photo).save(root / "CamVid" / split / name)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(root / "CamVid" / "test" / "lone.png")


def test_things_are_categories_and_stuff_is_background(tmp_path: Path) -> None:
    _camvid(tmp_path / "segnet")
    out = tmp_path / "out"
    summary = convert(tmp_path / "segnet", out, size=30, progress=False)
    names = ["background", "pole", "sign_symbol", "fence", "car", "pedestrian", "bicyclist"]
    assert summary["images"] == 3 and summary["categories"] == names
    assert 0.7 < summary["background_share"] < 0.95
    assert [c["name"] for c in json.loads((out / "classes.json").read_text())] == names
    mask = np.asarray(Image.open(out / "masks" / "train_0001TP_000.png"))
    assert mask.shape == (20, 30)  # longer side 30, nearest
    assert set(np.unique(mask)) == {0, 1, 4, 5, 255}  # sky and road → 0, unlabelled → 255
    assert Image.open(out / "images" / "train_0001TP_000.png").size == (30, 20)
    assert not (out / "images" / "test_lone.png").exists()  # photos without a mask are left out
    ds = load_dataset(out)
    assert ds.num_classes == 6 and len(ds.images) == 3
    assert [sorted(t) for t in ds.tags] == [[1], [1, 4, 5], [1, 4]]  # test, train, val
