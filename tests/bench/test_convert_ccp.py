"""bench/convert_ccp.py on a tiny CCP-shaped folder made here (photos, .mat masks, labels),
read back with the quality benchmark's own loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io as sio
from PIL import Image

from bench.convert_ccp import convert
from bench.quality_data import load_dataset

NAMES = ["null", "belt", "skin", "hair", "shoes"]


def _ccp(root: Path) -> None:
    """Four 60x40 photos; label 2 (skin) on all, 3 (hair) on three, 1 (belt) on one,
    4 (shoes) on two."""
    (root / "photos").mkdir(parents=True)
    (root / "annotations" / "pixel-level").mkdir(parents=True)
    cells = np.empty((1, len(NAMES)), dtype=object)
    for i, name in enumerate(NAMES):
        cells[0, i] = np.array([name])
    sio.savemat(root / "label_list.mat", {"label_list": cells})
    rng = np.random.default_rng(0)
    holders = {1: {0}, 2: {0, 1, 2, 3}, 3: {0, 1, 2}, 4: {1, 3}}
    for i in range(4):
        truth = np.zeros((60, 40), np.uint8)
        for label, images in holders.items():
            if i in images:
                truth[10 * label : 10 * label + 8, 5:30] = label
        sio.savemat(
            root / "annotations" / "pixel-level" / f"{i + 1:04d}.mat", {"groundtruth": truth}
        )
        pixels = rng.integers(0, 255, (60, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "photos" / f"{i + 1:04d}.jpg")
    Image.fromarray(np.zeros((60, 40, 3), np.uint8)).save(root / "photos" / "0005.jpg")  # no mask


def test_keeps_the_most_held_labels_and_unlabels_the_rest(tmp_path: Path) -> None:
    _ccp(tmp_path / "ccp")
    out = tmp_path / "out"
    summary = convert(tmp_path / "ccp", out, categories=2, size=30, progress=False)
    # skin (4 images) and hair (3) kept; shoes (2) and belt (1) become unlabelled.
    assert summary == {"images": 4, "categories": ["background", "skin", "hair"]}
    classes = json.loads((out / "classes.json").read_text())
    assert [c["name"] for c in classes] == ["background", "skin", "hair"]
    first = np.asarray(Image.open(out / "masks" / "0001.png"))
    assert first.shape == (30, 20)  # longer side 30, nearest
    assert set(np.unique(first)) == {0, 1, 2, 255}  # belt → 255
    assert Image.open(out / "images" / "0001.jpg").size == (20, 30)
    assert not (out / "images" / "0005.jpg").exists()  # photos without a mask are left out
    ds = load_dataset(out)
    assert ds.num_classes == 2 and len(ds.images) == 4
    assert ds.tags[0] == frozenset({1, 2}) and ds.tags[1] == frozenset({1, 2})
    assert ds.tags[3] == frozenset({1})  # shoes unlabelled, so not a tag
