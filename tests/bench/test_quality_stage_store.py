"""bench/quality_stage_store.py through bench/quality.py: a tuning run restores an earlier
run's L-Net and supervised stages, and is refused where they would not be the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.bench.test_quality import run_quick, write_folder

SEMI = ("--settings", "semi", "--full-val", "0.5")


def _rows(report: dict) -> dict[str, dict]:
    return {r["stage"]: r for r in report["rows"] if r["setting"] == "semi"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("store")
    folder = write_folder(root / "data")
    stages = root / "stages"
    return folder, stages, run_quick(folder, *SEMI, "--stage-dir", str(stages))


def test_a_run_keeps_its_early_stages_and_pnets_nets(saved: tuple[Path, Path, dict]) -> None:
    _, stages, _ = saved
    assert {p.name for p in (stages / "semi").iterdir()} == {
        "lnet.pt",
        "supervised.pt",
        "pnet.pt",  # kept for re-scoring offline, never restored
        "meta.json",
    }
    pnet = torch.load(stages / "semi" / "pnet.pt", weights_only=False)
    assert {"s_a", "s_b", "labels"} <= set(pnet) and "pnet" in pnet["metrics"]


def test_a_later_run_restores_them_and_trains_only_what_follows(
    saved: tuple[Path, Path, dict],
) -> None:
    folder, stages, first = saved
    again = run_quick(
        folder,
        *SEMI,
        "--stage-dir",
        str(stages),
        "--reuse",
        "lnet,supervised",
        "--set",
        "student_blend=0.5",
    )
    before, after = _rows(first), _rows(again)
    for stage in ("cam", "lnet", "supervised"):  # the same nets and labels, not retrained
        assert after[stage]["val_miou"] == before[stage]["val_miou"], stage
        assert after[stage]["label_miou"] == before[stage]["label_miou"], stage
    for stage in ("lnet", "supervised"):  # restored: no time spent
        assert after[stage]["stage_seconds"] == 0.0 < before[stage]["stage_seconds"], stage
    assert again["stages_reused"] == ["lnet", "supervised"] and first["stages_reused"] == []
    assert after["pnet"]["stage_seconds"] is not None  # P-Net did train, with the new knob
    assert again["config"]["student_blend"] == 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "lr=0.01"), "lr 0.002 -> 0.01"),
        # L-Net's stage completes the partial masks with the labels weak_labels names
        (("--set", "weak_labels=lnet"), "weak_labels 'cam' -> 'lnet'"),
        (("--seed", "3"), "was saved for"),
        (("--reuse", "pnet"), "--reuse takes lnet, supervised"),
        (("--settings", "tags_only"), "no stages saved for tags_only"),
    ],
)
def test_restoring_is_refused_where_the_stages_would_differ(
    saved: tuple[Path, Path, dict],
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    folder, stages, _ = saved
    reuse = () if "--reuse" in args else ("--reuse", "lnet")
    with pytest.raises(SystemExit):
        run_quick(folder, *SEMI, "--stage-dir", str(stages), *reuse, *args)
    assert message in capsys.readouterr().err


def test_reuse_needs_a_stage_dir(saved: tuple[Path, Path, dict], capsys) -> None:
    folder, _, _ = saved
    with pytest.raises(SystemExit):
        run_quick(folder, *SEMI, "--reuse", "lnet")
    assert "--reuse needs --stage-dir" in capsys.readouterr().err
