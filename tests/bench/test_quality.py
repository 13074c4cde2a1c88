"""bench/quality_data.py (split, settings, no leak) and bench/quality.py end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import quality, quality_runs
from bench.quality_data import (
    Dataset,
    check_no_hidden_masks,
    full_setting,
    labeling_data,
    load_dataset,
    pick_masked,
    semi_setting,
    split_categories,
    stratified_split,
    tags_of,
    tags_only_setting,
    transfer_setting,
    with_masks,
)
from tests.synthetic import make_shapes_dataset

ROOT = Path(__file__).resolve().parents[2]
K = 4
# The quick profile shrunk further: one epoch per stage, the narrowest network, one thread
# (tiny convolutions gain nothing from a second one, and it spares a busy machine), and the
# from-scratch encoder (tests/models/test_pretrained.py trains the pretrained one).
TINY = (
    "--budget",
    "2",
    "--set",
    "epochs=1",
    "--set",
    "width=4",
    "--set",
    "backbone=scratch",
    "--threads",
    "1",
)


def write_folder(root: Path, n: int = 32, size: int = 32, seed: int = 1) -> Path:
    """A dataset folder in the benchmark's layout: images/*.jpg, masks/*.png, classes.json."""
    images, masks, _ = make_shapes_dataset(n, size, seed=seed, num_classes=K, vary_size=True)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        Image.fromarray(image).save(root / "images" / f"im_{i:03d}.jpg", quality=95)
        Image.fromarray(mask).save(root / "masks" / f"im_{i:03d}.png")
    names = [{"id": 0, "name": "background"}] + [
        {"id": k, "name": f"shape{k}"} for k in range(1, K + 1)
    ]
    (root / "classes.json").write_text(json.dumps(names))
    return root


def run_quick(folder: Path, *args: str) -> dict:
    """quality.main on the quick profile in-process (restoring torch's thread count)."""
    threads = torch.get_num_threads()
    try:
        return quality.main(
            ["--profile", "quick", "--data", str(folder), "--no-progress", *args, *TINY]
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def ds(folder: Path) -> Dataset:
    return load_dataset(folder)


def test_load_dataset_reads_the_layout(ds: Dataset, folder: Path) -> None:
    assert len(ds) == 32 and ds.num_classes == K
    assert ds.class_names == ["background", "shape1", "shape2", "shape3", "shape4"]
    for image, mask, tags in zip(ds.images, ds.masks, ds.tags, strict=True):
        assert image.shape[:2] == mask.shape and image.dtype == mask.dtype == np.uint8
        assert tags == tags_of(mask, K) and 0 not in tags
    subset = load_dataset(folder, max_images=10, seed=3)
    assert len(subset) == 10 and subset.ids == sorted(subset.ids)
    assert load_dataset(folder, max_images=10, seed=3).ids == subset.ids


def _rare_tags() -> list[frozenset[int]]:
    rng = np.random.default_rng(0)
    tags = [
        frozenset(int(k) for k in rng.choice([1, 2, 3], size=2, replace=False)) for _ in range(60)
    ]
    tags[5] = frozenset({4, 1})  # category 4 on two images only
    tags[17] = frozenset({4})
    tags[30] = frozenset({5, 2})  # category 5 on a single image
    return tags


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_is_disjoint_stratified_and_seeded(seed: int) -> None:
    tags = _rare_tags()
    train, val = stratified_split(tags, 0.2, seed)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(len(tags)))
    assert len(val) == round(0.2 * len(tags))
    every = set().union(*tags)
    assert set().union(*(tags[i] for i in val)) == every  # every category in val
    assert set().union(*(tags[i] for i in train)) == every - {5}  # 5 has one image
    assert stratified_split(tags, 0.2, seed) == (train, val)


def test_split_depends_on_seed(ds: Dataset) -> None:
    splits = {tuple(stratified_split(ds.tags, 0.25, s)[1]) for s in range(4)}
    assert len(splits) > 1
    for s in range(4):
        train, val = stratified_split(ds.tags, 0.25, s)
        assert set(ds.categories(val)) == set(ds.categories()) == set(ds.categories(train))


def test_category_halves_are_seeded_complements() -> None:
    a, b = split_categories(range(1, 24), 0)
    assert sorted(a + b) == list(range(1, 24)) and not set(a) & set(b)
    assert len(a) == 11 and (a, b) == split_categories(range(1, 24), 0)
    assert split_categories(range(1, 24), 1) != (a, b)


def test_transfer_setting_paints_only_strong_categories(ds: Dataset) -> None:
    train, _ = stratified_split(ds.tags, 0.2, 0)
    strong, weak = [1, 3], [2, 4]
    s = transfer_setting(ds, train, strong)
    assert (s.strong, s.weak) == (strong, weak)
    assert s.unmasked_positions and s.masked_positions
    for p, i in enumerate(train):
        visible, full = s.visible[p], ds.masks[i]
        if not ds.tags[i] & set(strong):
            assert visible is None  # no strong category: tags only
            continue
        assert visible is not None and visible is not full
        assert not np.isin(visible, weak).any()  # weak pixels are unlabelled
        assert np.all(visible[np.isin(full, weak)] == 255)
        keep = ~np.isin(full, weak)  # strong pixels and background stay as they were
        assert np.array_equal(visible[keep], full[keep])
    data = labeling_data(ds, s)
    assert data.tags == [ds.tags[i] for i in train]  # every image keeps all its tags
    assert [m is None for m in data.masks] == [v is None for v in s.visible]
    assert sorted(data.strong_classes(1)) == strong


def test_semi_masks_an_eighth_and_covers_categories(ds: Dataset) -> None:
    train, _ = stratified_split(ds.tags, 0.2, 0)
    s = semi_setting(ds, train, 1 / 8, 0)
    assert len(s.masked_positions) == round(len(train) / 8)
    covered = set().union(*(ds.tags[train[p]] for p in s.masked_positions))
    assert covered == set(ds.categories(train))
    for p in s.masked_positions:
        assert np.array_equal(s.visible[p], ds.masks[train[p]])
    again = semi_setting(ds, train, 1 / 8, 0)
    assert again.masked_positions == s.masked_positions  # seeded
    assert pick_masked(ds.tags, 1 / 8, 0) == pick_masked(ds.tags, 1 / 8, 0)
    assert pick_masked(ds.tags, 1 / 8, 0) != pick_masked(ds.tags, 1 / 8, 1)


def test_tags_only_and_full(ds: Dataset) -> None:
    train, _ = stratified_split(ds.tags, 0.2, 0)
    none = labeling_data(ds, tags_only_setting(ds, train))
    assert none.masked == [] and none.tags == [ds.tags[i] for i in train]
    full = labeling_data(ds, full_setting(ds, train))
    assert all(np.array_equal(m, ds.masks[i]) for m, i in zip(full.masks, train, strict=True))


def test_check_no_hidden_masks_catches_a_leak(ds: Dataset) -> None:
    train, _ = stratified_split(ds.tags, 0.2, 0)
    s = transfer_setting(ds, train, [1, 3])
    data = labeling_data(ds, s)
    check_no_hidden_masks(ds, s, data)
    leaked = labeling_data(ds, s)
    p = s.unmasked_positions[0]
    leaked.masks[p] = ds.masks[train[p]]  # a tag-only image's hidden mask
    with pytest.raises(AssertionError, match="tag-only"):
        check_no_hidden_masks(ds, s, leaked)
    unpainted = labeling_data(ds, s)
    q = s.masked_positions[0]
    unpainted.masks[q] = ds.masks[train[q]]  # weak pixels of a painted image
    with pytest.raises(AssertionError):
        check_no_hidden_masks(ds, s, unpainted)
    more = with_masks(ds, s, [p], "more")  # annotators paint it: now it may be seen
    check_no_hidden_masks(ds, more, labeling_data(ds, more))


def test_every_network_input_is_checked_and_hides_tag_only_masks(
    ds: Dataset, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run the benchmark in-process with a spy on run_pipeline: every LabelingData a network
    gets went through the check and holds no mask for an image tag-only in its setting."""
    checked: list[int] = []
    kept: list[object] = []  # alive, so no later object takes a checked one's id
    given: list[tuple[str, list]] = []
    real_check, real_run = quality_runs.check_no_hidden_masks, quality_runs.run_pipeline

    def check(ds_, setting, data, positions=None):
        real_check(ds_, setting, data, positions)
        checked.append(id(data))
        kept.append(data)
        chosen = list(range(len(setting.train)) if positions is None else positions)
        given.append((setting.name, [setting.visible[p] is None for p in chosen]))

    def run(data, cfg, **kwargs):
        assert id(data) in checked
        name, tag_only = given[checked.index(id(data))]
        assert [m is None for m in data.masks] == tag_only, name
        return real_run(data, cfg, **kwargs)

    # run_setting (bench/quality_runs.py) calls both, looked up in its own module
    monkeypatch.setattr(quality_runs, "check_no_hidden_masks", check)
    monkeypatch.setattr(quality_runs, "run_pipeline", run)
    out = run_quick(folder, "--settings", "semi", "--budget-repeats", "2")
    # full, semi and two pairs of budget arms
    assert len(checked) == 6
    assert set(out["settings"]) == {"full", "semi"}
    budget = out["settings"]["semi"]["budget"]
    assert len(budget["suggested"]["images"]) == len(budget["random"]["images"]) == 2
    pairs = budget["pairs"]
    assert [p["seed"] for p in pairs] == [0, 1] and budget["repeats"] == 2
    # same suggested picks in both pairs; each pair draws its own random ones
    assert pairs[0]["suggested"]["images"] == pairs[1]["suggested"]["images"]
    diffs = [p["suggested"]["val_miou"] - p["random"]["val_miou"] for p in pairs]
    assert budget["suggested_minus_random_per_pair"] == pytest.approx(diffs, abs=1e-4)
    assert budget["suggested_minus_random"] == pytest.approx(sum(diffs) / 2, abs=1e-4)


def test_cli_quick_profile_end_to_end(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [
            sys.executable,
            "bench/quality.py",
            "--profile",
            "quick",
            "--data",
            str(folder),
            "--json",
            str(out),
            *TINY,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| setting | row |" in proc.stdout
    report = json.loads(out.read_text())
    assert {"settings", "rows", "machine", "commit", "config", "split"} <= set(report)
    settings = report["settings"]
    assert set(settings) == {"transfer", "semi", "tags_only", "full"}
    for key, summary in settings.items():
        assert {"val_miou", "pct_of_full"} <= set(summary), key
        assert summary["val_miou"] is not None and 0.0 <= summary["val_miou"] <= 1.0
        assert (key == "full") != ("label_miou" in summary)
    assert settings["full"]["pct_of_full"] == 100.0
    rows = {(r["setting"], r["row"]) for r in report["rows"]}
    for key in ("transfer", "semi", "tags_only"):
        assert {(key, "CAM (tags)"), (key, "L-Net"), (key, "L-Net + P-Net")} <= rows
    for key in ("transfer", "semi"):
        assert (key, "self-training round 1") in rows
    # no human mask to check a round against: tags only delivers P-Net's nets
    assert ("tags_only", "self-training round 1") not in rows
    for key in ("transfer", "semi"):
        assert (key, "supervised only (human masks)") in rows
    assert ("semi", "L-Net + P-Net, +2 suggested masks") in rows
    # transfer's partial masks: the completed pixels scored on their hidden truth
    completion = {r["stage"]: r for r in report["rows"] if r["setting"] == "transfer"}
    for stage in ("completion", "completion_cam_all"):
        assert completion[stage]["partial_masks"] > 0
        assert 0.0 <= completion[stage]["label_miou"] <= 1.0
    assert report["machine"]["cpu"] is not None


def test_full_val_skips_the_reference_run_and_scales_by_it(folder: Path) -> None:
    out = run_quick(folder, "--settings", "tags_only", "--full-val", "0.5")
    assert set(out["settings"]) == {"tags_only"}
    summary = out["settings"]["tags_only"]
    assert summary["pct_of_full"] == round(100 * summary["val_miou"] / 0.5, 1)


def test_rows_report_the_cam_prior_of_teachers_and_delivered_masks(folder: Path) -> None:
    out = run_quick(
        folder,
        "--settings",
        "transfer",
        "--full-val",
        "0.5",
        "--set",
        "cam_prior=2",
        "--set",
        "cam_prior_labels=teachers",
    )
    rows = [r for r in out["rows"] if r["setting"] == "transfer"]
    pnet = next(r for r in rows if r.get("stage") == "pnet")
    assert pnet["teacher_priors"]["supervised"]["cam_prior"] == 2.0
    assert 0.0 <= pnet["teacher_priors"]["supervised"]["holdout_miou"] <= 1.0
    assert [r["cam_prior"] for r in rows if r.get("final")] == [2.0]
